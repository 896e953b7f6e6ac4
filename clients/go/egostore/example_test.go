package egostore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
)

// The store for eGo's durable-state entities: connect it, then hand it to eGo with
// ego.NewConfig(nil, ego.WithStateStore(store)) (see clients/go/README.md).
func Example() {
	ctx := context.Background()
	store := egostore.New("http://127.0.0.1:8080",
		egostore.WithAPIKey(os.Getenv("STATESTORE_API_KEY")),
		egostore.WithTimeout(5*time.Second),
		egostore.WithFencing(),
	)
	if err := store.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = store.Disconnect(ctx) }()
	if err := store.Ping(ctx); err != nil {
		log.Printf("the service is not ready yet: %v", err)
	}
}

// Package storetest holds what the tests of egostore and of its ego-contrib interop (a module of its own,
// contribtest) share: a store and a generated client on a live service, and states to write.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/tochemey/ego/v4/egopb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/accountpb"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

// Connected is a store on the live service at url, with the tests' API key, disconnected at the end.
func Connected(t *testing.T, url string, opts ...egostore.Option) *egostore.Store {
	t.Helper()
	opts = append([]egostore.Option{egostore.WithAPIKey(livetest.Env(t, "LIVE_STATESTORE_API_KEY"))}, opts...)
	store := egostore.New(url, opts...)
	if err := store.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Disconnect(context.Background()) })
	return store
}

// HTTPAPI is the generated client on the live service at url, as any HTTP client would call it.
func HTTPAPI(t *testing.T, url string) *statestore.ClientWithResponses {
	t.Helper()
	key := livetest.Env(t, "LIVE_STATESTORE_API_KEY")
	api, err := statestore.NewClientWithResponses(url, statestore.WithRequestEditorFn(
		func(_ context.Context, request *http.Request) error {
			request.Header.Set("Authorization", "Bearer "+key)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// EntityID is a fresh persistence id of the form eGo allows for an entity.
func EntityID(t *testing.T) string {
	t.Helper()
	random := make([]byte, 8)
	_, _ = rand.Read(random)
	return "account-" + hex.EncodeToString(random)
}

// Account is an open account state with that id and balance, as an eGo actor hands it to the store.
func Account(t *testing.T, id string, balance int64) *anypb.Any {
	t.Helper()
	state, err := anypb.New(&accountpb.Account{AccountId: id, BalanceCents: balance, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// DurableState is what eGo's durable state actor writes.
func DurableState(id string, version uint64, state *anypb.Any, timestamp int64, shard uint64) *egopb.DurableState {
	return &egopb.DurableState{
		PersistenceId: id, VersionNumber: version, ResultingState: state, Timestamp: timestamp, Shard: shard,
	}
}

// MustEqual fails the test unless the two messages are equal.
func MustEqual(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// Must fails the test on an error.
func Must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

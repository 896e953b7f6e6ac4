package egostore_test

import (
	"testing"
	"time"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
)

// eGo's habits pass with every guard of the service, with and without fencing: a stop before any command
// writes version 0 with the zero time.Time (negative nanoseconds), every stop writes the same version again,
// and versions start at 1, over version 0 or over nothing.
func TestEGoHabitsPass(t *testing.T) {
	for _, backend := range livetest.Backends {
		for _, guard := range []string{"", "-monotonic"} {
			for _, fencing := range []bool{false, true} {
				name := backend + guard
				if fencing {
					name += "/fencing"
				}
				t.Run(name, func(t *testing.T) {
					var opts []egostore.Option
					if fencing {
						opts = append(opts, egostore.WithFencing())
					}
					eGoHabits(t, storetest.Connected(t, livetest.URL(t, backend+guard), opts...))
				})
			}
		}
	}
}

func eGoHabits(t *testing.T, store *egostore.Store) {
	ctx := t.Context()
	id := storetest.EntityID(t)

	idle := startEntity(t, store, id)
	storetest.Must(t, idle.stop(ctx))
	stored, err := store.GetLatestState(ctx, id)
	if err != nil || stored.GetVersionNumber() != 0 || stored.GetTimestamp() != (time.Time{}).UnixNano() {
		t.Fatalf("a stop before any command stored %v, %v", stored, err)
	}
	storetest.Must(t, startEntity(t, store, id).stop(ctx))

	busy := startEntity(t, store, id)
	storetest.Must(t, busy.credit(ctx, 100))
	storetest.Must(t, busy.credit(ctx, 50))
	storetest.Must(t, busy.stop(ctx))

	recovered := startEntity(t, store, id)
	recovered.holds(t, 150, 2)
	storetest.Must(t, recovered.stop(ctx))
	again := startEntity(t, store, id)
	again.holds(t, 150, 2)
	storetest.Must(t, again.credit(ctx, -30))
	startEntity(t, store, id).holds(t, 120, 3)

	fresh := startEntity(t, store, storetest.EntityID(t))
	storetest.Must(t, fresh.credit(ctx, 1))
	storetest.Must(t, fresh.stop(ctx))
	startEntity(t, store, fresh.id).holds(t, 1, 1)
}

package egostore_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
)

// Two copies of one entity, as on both sides of a split brain, each with its own store: with fencing, the
// copy that fell behind fails loudly and the newer state stays.
func TestFencingStopsASecondCopyOfAnEntity(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			ctx := t.Context()
			id := storetest.EntityID(t)
			first := startEntity(t, storetest.Connected(t, url, egostore.WithFencing()), id)
			storetest.Must(t, first.credit(ctx, 100))
			second := startEntity(t, storetest.Connected(t, url, egostore.WithFencing()), id)
			storetest.Must(t, first.credit(ctx, 10))

			for name, err := range map[string]error{"command": second.credit(ctx, -30), "stop": second.stop(ctx)} {
				var problem *egostore.ProblemError
				if !errors.Is(err, egostore.ErrFenced) || !errors.As(err, &problem) {
					t.Fatalf("the second copy's %s was not fenced: %v", name, err)
				}
				if problem.Status != http.StatusPreconditionFailed || problem.CurrentVersion == nil || *problem.CurrentVersion != 2 {
					t.Fatalf("the second copy's %s was refused with %+v", name, problem)
				}
			}
			startEntity(t, storetest.Connected(t, url), id).holds(t, 110, 2)
		})
	}
}

// Two copies that compute the same next state: the second one's write is refused, never taken for its own.
func TestFencingStopsASecondCopyThatWritesTheSameState(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			ctx := t.Context()
			id := storetest.EntityID(t)
			first := startEntity(t, storetest.Connected(t, url, egostore.WithFencing()), id)
			storetest.Must(t, first.credit(ctx, 100))
			second := startEntity(t, storetest.Connected(t, url, egostore.WithFencing()), id)
			storetest.Must(t, first.credit(ctx, 10))

			if err := second.credit(ctx, 10); !errors.Is(err, egostore.ErrFenced) {
				t.Fatalf("the second copy's identical write was not fenced: %v", err)
			}
			storetest.Must(t, first.stop(ctx))
			startEntity(t, storetest.Connected(t, url), id).holds(t, 110, 2)
		})
	}
}

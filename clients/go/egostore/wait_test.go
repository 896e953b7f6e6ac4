package egostore_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tochemey/ego/v4/egopb"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
)

// A waiter in one goroutine gets what another goroutine changes: the new state after a write, nil after a
// delete, and its context's error when nothing changes before the context ends.
func TestWaitForChangeGetsWhatAnotherGoroutineChanges(t *testing.T) {
	write := func(t *testing.T, store *egostore.Store, _ string, next *egopb.DurableState) error {
		return store.WriteState(t.Context(), next)
	}
	remove := func(t *testing.T, _ *egostore.Store, url string, next *egopb.DurableState) error {
		response, err := storetest.HTTPAPI(t, url).DeleteStateWithResponse(t.Context(), next.GetPersistenceId(), nil)
		if err == nil && response.StatusCode() != http.StatusNoContent {
			err = errors.New(response.Status())
		}
		return err
	}
	tests := []struct {
		name    string
		from    uint64
		change  func(t *testing.T, store *egostore.Store, url string, next *egopb.DurableState) error
		within  time.Duration
		want    func(stored, next *egopb.DurableState) *egopb.DurableState
		wantErr error
	}{
		{name: "a write", from: 1, change: write, within: 30 * time.Second,
			want: func(_, next *egopb.DurableState) *egopb.DurableState { return next }},
		{name: "a delete", from: 1, change: remove, within: 30 * time.Second,
			want: func(_, _ *egopb.DurableState) *egopb.DurableState { return nil }},
		{name: "another version stored", from: 7, within: 30 * time.Second,
			want: func(stored, _ *egopb.DurableState) *egopb.DurableState { return stored }},
		{name: "no change before the context ends", from: 1, within: 1500 * time.Millisecond,
			wantErr: context.DeadlineExceeded},
	}
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			store := storetest.Connected(t, url)
			for _, test := range tests {
				t.Run(test.name, func(t *testing.T) {
					id := storetest.EntityID(t)
					stored := storetest.DurableState(id, 1, storetest.Account(t, id, 100), time.Now().UnixNano(), 5)
					next := storetest.DurableState(id, 2, storetest.Account(t, id, 150), time.Now().UnixNano(), 6)
					if err := store.WriteState(t.Context(), stored); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(t.Context(), test.within)
					defer cancel()
					type result struct {
						state *egopb.DurableState
						err   error
					}
					waited := make(chan result, 1)
					go func() {
						state, err := store.WaitForChange(ctx, id, test.from)
						waited <- result{state, err}
					}()
					if test.change != nil {
						time.Sleep(300 * time.Millisecond) // so that the change finds the request waiting
						if err := test.change(t, store, url, next); err != nil {
							t.Fatal(err)
						}
					}
					got := <-waited
					if test.wantErr != nil {
						if !errors.Is(got.err, test.wantErr) {
							t.Fatalf("got %v, %v; want an error wrapping %v", got.state, got.err, test.wantErr)
						}
						return
					}
					if got.err != nil {
						t.Fatal(got.err)
					}
					storetest.MustEqual(t, got.state, test.want(stored, next))
				})
			}
		})
	}
}

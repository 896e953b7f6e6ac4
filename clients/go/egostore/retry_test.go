package egostore_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
)

// unavailableFirst is the live service behind a proxy on 127.0.0.1 that answers the first `failures`
// requests 503 with the Retry-After header given (none when empty).
func unavailableFirst(t *testing.T, failures int32, retryAfter string) (string, *atomic.Int32) {
	t.Helper()
	target, err := url.Parse(livetest.URL(t, "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	service := httputil.NewSingleHostReverseProxy(target)
	requests := new(atomic.Int32)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > failures {
			service.ServeHTTP(w, r)
			return
		}
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "throttled"}`))
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL, requests
}

func TestUnavailableAnswersAreRetriedWithinTheWindow(t *testing.T) {
	tests := []struct {
		name       string
		failures   int32
		retryAfter string
		opts       []egostore.Option
		requests   int32
		status     int
		took       time.Duration
	}{
		{"after the Retry-After asked for", 1, "1", nil, 2, 0, time.Second},
		{"after a short backoff without Retry-After", 2, "", nil, 3, 0, 300 * time.Millisecond},
		{"not when Retry-After is past the window", 1, "6", nil, 1, http.StatusServiceUnavailable, 0},
		{"not when retries are off", 1, "0", []egostore.Option{egostore.WithRetriesFor(0)}, 1, http.StatusServiceUnavailable, 0},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			proxy, requests := unavailableFirst(t, test.failures, test.retryAfter)
			id := storetest.EntityID(t)
			started := time.Now()
			err := storetest.Connected(t, proxy, test.opts...).WriteState(t.Context(), storetest.DurableState(id, 1, storetest.Account(t, id, 1), 1, 0))
			took := time.Since(started)
			var problem *egostore.ProblemError
			switch {
			case test.status == 0 && err != nil:
				t.Fatalf("not written: %v", err)
			case test.status != 0 && (!errors.As(err, &problem) || problem.Status != test.status):
				t.Fatalf("got %v, want a %d problem", err, test.status)
			case requests.Load() != test.requests:
				t.Fatalf("%d requests, want %d", requests.Load(), test.requests)
			case took < test.took:
				t.Fatalf("took %v, want at least %v", took, test.took)
			}
		})
	}
}

func TestTheTimeoutEndsAWaitForARetry(t *testing.T) {
	proxy, _ := unavailableFirst(t, 1, "3")
	store := storetest.Connected(t, proxy, egostore.WithTimeout(300*time.Millisecond))
	started := time.Now()
	_, err := store.GetLatestState(t.Context(), storetest.EntityID(t))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(started) > 2*time.Second {
		t.Fatalf("got %v after %v, want the deadline within 300 ms", err, time.Since(started))
	}
}

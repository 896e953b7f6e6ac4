package egostore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
)

type spanKey struct{}

// TestTraceHeadersCarryTheContextsSpan checks that WithTraceHeaders puts the caller's span, from the
// context, on the requests the service receives, and that nothing is added without it.
func TestTraceHeadersCarryTheContextsSpan(t *testing.T) {
	target, err := url.Parse(livetest.URL(t, "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	service := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("traceparent"))
		mu.Unlock()
		service.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	inject := func(ctx context.Context, header http.Header) {
		if span, ok := ctx.Value(spanKey{}).(string); ok {
			header.Set("traceparent", span)
		}
	}
	id := storetest.EntityID(t)
	traced := context.WithValue(t.Context(), spanKey{}, traceparent)
	state := storetest.DurableState(id, 1, storetest.Account(t, id, 1), 1, 0)
	if err := storetest.Connected(t, proxy.URL, egostore.WithTraceHeaders(inject)).WriteState(traced, state); err != nil {
		t.Fatalf("not written: %v", err)
	}
	if _, err := storetest.Connected(t, proxy.URL).GetLatestState(traced, id); err != nil {
		t.Fatalf("not read: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != traceparent || seen[1] != "" {
		t.Fatalf("traceparent headers seen: %q, want [%q, \"\"]", seen, traceparent)
	}
}

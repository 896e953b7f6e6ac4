package egostore

import (
	"context"
	"net/http"
	"time"
)

// Option configures a Store.
type Option func(*options)

type options struct {
	apiKey     string
	httpClient *http.Client
	timeout    time.Duration
	retryFor   time.Duration
	fencing    bool
	inject     func(context.Context, http.Header)
}

func defaultOptions() options {
	return options{httpClient: &http.Client{}, timeout: 10 * time.Second, retryFor: 5 * time.Second}
}

// WithAPIKey sends `Authorization: Bearer <key>` with every call, for a service run with STATESTORE_API_KEYS.
func WithAPIKey(key string) Option {
	return func(o *options) { o.apiKey = key }
}

// WithHTTPClient sends the calls through client (its transport, proxies, TLS settings) instead of a new one;
// nil keeps the new one.
func WithHTTPClient(client *http.Client) Option {
	return func(o *options) {
		if client != nil {
			o.httpClient = client
		}
	}
}

// WithTimeout bounds each store call, its retries included (default 10 s).
func WithTimeout(timeout time.Duration) Option {
	return func(o *options) { o.timeout = timeout }
}

// WithRetriesFor retries a call answered 503 (backend throttled, unreachable or busy), after the delay its
// Retry-After asks for, as long as the next attempt starts within d of the first (default 5 s; 0: never).
func WithRetriesFor(d time.Duration) Option {
	return func(o *options) { o.retryFor = d }
}

// WithFencing makes each WriteState of version v conditional on version v-1 being stored (for v = 1:
// version 0 or nothing; for v = 0: nothing), so that a second copy of an entity, such as one on the other
// side of a split brain, fails with ErrFenced instead of overwriting newer state. eGo's repeated write of
// the state it holds, at the same version, when an entity stops still succeeds.
func WithFencing() Option {
	return func(o *options) { o.fencing = true }
}

// WithTraceHeaders calls inject with each request's context and headers before it is sent, so that a trace
// the context carries continues in the service (W3C traceparent). With OpenTelemetry:
//
//	egostore.WithTraceHeaders(func(ctx context.Context, h http.Header) {
//		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
//	})
//
// The package itself depends on no tracing library; without this option no header is added. (Wrapping the
// transport of WithHTTPClient's client with otelhttp does the same, with a client span per call.)
func WithTraceHeaders(inject func(ctx context.Context, header http.Header)) Option {
	return func(o *options) { o.inject = inject }
}

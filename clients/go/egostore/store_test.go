package egostore_test

import (
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/tochemey/ego/v4/egopb"
	"google.golang.org/protobuf/proto"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/accountpb"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

func TestStatesComeBackWithEveryField(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			store := storetest.Connected(t, url)
			tests := []*egopb.DurableState{
				storetest.DurableState(storetest.EntityID(t), 1, storetest.Account(t, "a", 104), time.Now().UnixNano(), 3),
				storetest.DurableState(storetest.EntityID(t), 0, storetest.Account(t, "b", 0), time.Time{}.UnixNano(), 0),
				storetest.DurableState(storetest.EntityID(t), math.MaxUint64, storetest.Account(t, "c", math.MinInt64), math.MinInt64, math.MaxUint64),
				storetest.DurableState(storetest.EntityID(t), 7, storetest.Account(t, "d", 1), math.MaxInt64, 1),
			}
			for _, state := range tests {
				if err := store.WriteState(t.Context(), state); err != nil {
					t.Fatal(err)
				}
				read, err := store.GetLatestState(t.Context(), state.GetPersistenceId())
				if err != nil {
					t.Fatal(err)
				}
				storetest.MustEqual(t, read, state)
			}
		})
	}
}

func TestNothingStoredIsNilNil(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			state, err := storetest.Connected(t, livetest.URL(t, backend)).GetLatestState(t.Context(), storetest.EntityID(t))
			if state != nil || err != nil {
				t.Fatalf("got %v, %v; want nil, nil", state, err)
			}
		})
	}
}

func TestHTTPReadsDecodeTheAccountInsideTheAny(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			id := storetest.EntityID(t)
			if err := storetest.Connected(t, url).WriteState(t.Context(), storetest.DurableState(id, 2, storetest.Account(t, id, 250), 9, 4)); err != nil {
				t.Fatal(err)
			}
			decode := true
			response, err := storetest.HTTPAPI(t, url).GetStateWithResponse(t.Context(), id, &statestore.GetStateParams{Decode: &decode})
			if err != nil || response.JSON200 == nil || response.JSON200.State == nil {
				t.Fatalf("GET ?decode=true: %v, %s", err, response.Body)
			}
			state, ok := (*response.JSON200.State).(map[string]any)
			want := map[string]any{
				"@type": "type.googleapis.com/acme.bank.v1.Account", "accountId": id, "balanceCents": "250", "open": true,
			}
			if !ok || len(state) != len(want) {
				t.Fatalf("decoded state %v, want %v", *response.JSON200.State, want)
			}
			for key, value := range want {
				if state[key] != value {
					t.Fatalf("decoded state %v, want %v", state, want)
				}
			}
			stored := response.JSON200
			if stored.Manifest != "google.protobuf.Any" || stored.VersionNumber != 2 || stored.Timestamp != 9 || stored.Shard != 4 {
				t.Fatalf("GET shows %+v", stored)
			}
		})
	}
}

func TestAMessageThatHTTPClientsWroteUnwrappedIsRecoveredInAnAny(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			id := storetest.EntityID(t)
			payload, err := proto.Marshal(&accountpb.Account{AccountId: id, BalanceCents: 5, Open: true})
			if err != nil {
				t.Fatal(err)
			}
			timestamp := statestore.Int64(1764115200000)
			written, err := storetest.HTTPAPI(t, url).PutStateWithResponse(t.Context(), id, nil, statestore.PutStateRequest{
				Manifest: "acme.bank.v1.Account", Payload: &payload, VersionNumber: 3, Timestamp: &timestamp,
			})
			if err != nil || written.JSON200 == nil && written.JSON201 == nil {
				t.Fatalf("PUT: %v, %s", err, written.Body)
			}
			read, err := storetest.Connected(t, url).GetLatestState(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			storetest.MustEqual(t, read, storetest.DurableState(id, 3, storetest.Account(t, id, 5), 1764115200000, 0))
		})
	}
}

func TestCallsOutsideAConnectionFail(t *testing.T) {
	store := egostore.New(livetest.URL(t, "sqlite"))
	if err := store.Ping(t.Context()); !errors.Is(err, egostore.ErrNotConnected) {
		t.Fatalf("Ping before Connect: %v", err)
	}
	if err := store.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := store.Disconnect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetLatestState(t.Context(), storetest.EntityID(t)); !errors.Is(err, egostore.ErrNotConnected) {
		t.Fatalf("GetLatestState after Disconnect: %v", err)
	}
}

func TestRefusalsAreProblemErrors(t *testing.T) {
	url := livetest.URL(t, "sqlite")
	store := egostore.New(url, egostore.WithAPIKey("not-a-key"))
	if err := store.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := store.GetLatestState(t.Context(), storetest.EntityID(t))
	var problem *egostore.ProblemError
	if !errors.As(err, &problem) || problem.Status != http.StatusUnauthorized || problem.Detail == "" {
		t.Fatalf("a wrong API key gave %v", err)
	}
	if err := storetest.Connected(t, url).Ping(t.Context()); err != nil {
		t.Fatalf("Ping of a ready service: %v", err)
	}
}

// An eGo actor knows nothing of expiry: its next write makes a state that an HTTP client set to expire permanent.
func TestAWriteThroughEgostoreClearsAnExpiry(t *testing.T) {
	for _, backend := range livetest.Backends {
		t.Run(backend, func(t *testing.T) {
			url := livetest.URL(t, backend)
			id := storetest.EntityID(t)
			api := storetest.HTTPAPI(t, url)
			payload, err := proto.Marshal(storetest.Account(t, id, 5))
			if err != nil {
				t.Fatal(err)
			}
			ttl := 3600
			written, err := api.PutStateWithResponse(t.Context(), id, nil, statestore.PutStateRequest{
				Manifest: "google.protobuf.Any", Payload: &payload, VersionNumber: 1, TtlSeconds: &ttl,
			})
			if err != nil || written.JSON200 == nil || written.JSON200.ExpiresAt == nil {
				t.Fatalf("PUT with ttl_seconds: %v, %s", err, written.Body)
			}
			if err := storetest.Connected(t, url).WriteState(t.Context(), storetest.DurableState(id, 2, storetest.Account(t, id, 6), 9, 0)); err != nil {
				t.Fatal(err)
			}
			read, err := api.GetStateWithResponse(t.Context(), id, nil)
			if err != nil || read.JSON200 == nil || read.JSON200.VersionNumber != 2 || read.JSON200.ExpiresAt != nil {
				t.Fatalf("GET after egostore's write: %v, %s", err, read.Body)
			}
		})
	}
}

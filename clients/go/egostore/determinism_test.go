package egostore_test

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tochemey/ego/v4/egopb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/accountpb"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

// holds are the map entries of the account in these tests: enough of them that two orders differ.
var holds = map[string]int64{"deposit": 5000, "rent": 90000, "tax": 1200, "travel": 300}

// inOrder is the account with holds as an Any whose bytes list the map entries in the order of keys, as
// Go's proto.Marshal may (it picks no order for a map): the bytes differ, the message is the same.
func inOrder(t *testing.T, id string, keys []string) *anypb.Any {
	t.Helper()
	value, err := proto.MarshalOptions{Deterministic: true}.Marshal(
		&accountpb.Account{AccountId: id, BalanceCents: 100, Open: true})
	storetest.Must(t, err)
	const holdsField, keyField, valueField = 4, 1, 2
	for _, key := range keys {
		entry := protowire.AppendTag(nil, keyField, protowire.BytesType)
		entry = protowire.AppendString(entry, key)
		entry = protowire.AppendTag(entry, valueField, protowire.VarintType)
		entry = protowire.AppendVarint(entry, uint64(holds[key]))
		value = protowire.AppendTag(value, holdsField, protowire.BytesType)
		value = protowire.AppendBytes(value, entry)
	}
	state := &anypb.Any{TypeUrl: "type.googleapis.com/acme.bank.v1.Account", Value: value}
	recovered := new(accountpb.Account)
	storetest.Must(t, state.UnmarshalTo(recovered))
	if want := (&accountpb.Account{AccountId: id, BalanceCents: 100, Open: true, HoldsCents: holds}); !proto.Equal(recovered, want) {
		t.Fatalf("the hand-made bytes hold %v, want %v", recovered, want)
	}
	return state
}

// eGo v4.4.3 serializes a recovered state again (anypb.New, not deterministic) and writes it at the same
// version when the entity stops, idle passivation included. A map in the state may then come out in
// another order than stored: that write must still pass, fenced or not, under either guard, also over
// bytes that an older writer stored in an order of its own. Another state at that version stays fenced.
func TestAStopWritesARecoveredMapInAnyOrder(t *testing.T) {
	sorted := slices.Sorted(maps.Keys(holds))
	reversed := slices.Clone(sorted)
	slices.Reverse(reversed)
	tests := []struct {
		name            string
		olderWriter     bool     // the state was stored as these bytes over HTTP, not through egostore
		stored, stopped []string // the order of the map entries in the bytes written and in the stop's
	}{
		{"stop in reverse key order", false, sorted, reversed},
		{"stop in key order", false, sorted, sorted},
		{"stored by an older writer in reverse key order", true, reversed, sorted},
		{"stored by an older writer, stop in its order", true, reversed, reversed},
	}
	for _, backend := range livetest.Backends {
		for _, guard := range []string{"", "-monotonic"} {
			for _, fencing := range []bool{false, true} {
				var opts []egostore.Option
				name := backend + guard
				if fencing {
					opts, name = append(opts, egostore.WithFencing()), name+"/fencing"
				}
				for _, test := range tests {
					t.Run(name+"/"+test.name, func(t *testing.T) {
						url := livetest.URL(t, backend+guard)
						ctx := t.Context()
						id := storetest.EntityID(t)
						store := storetest.Connected(t, url, opts...)
						written := storetest.DurableState(id, 1, inOrder(t, id, test.stored), 7, 2)
						if test.olderWriter {
							putAny(t, url, written)
						} else {
							storetest.Must(t, store.WriteState(ctx, written))
						}

						stop := inOrder(t, id, test.stopped)
						if !slices.Equal(test.stored, test.stopped) &&
							bytes.Equal(stop.GetValue(), inOrder(t, id, test.stored).GetValue()) {
							t.Fatal("the stop's bytes are the stored ones: the test proves nothing")
						}
						recovered := startEntity(t, storetest.Connected(t, url, opts...), id)
						if recovered.version != 1 || !maps.Equal(recovered.state.GetHoldsCents(), holds) {
							t.Fatalf("recovered %v at version %d", recovered.state, recovered.version)
						}
						storetest.Must(t, recovered.store.WriteState(ctx, storetest.DurableState(id, 1, stop, time.Time{}.UnixNano(), 2)))

						read, err := store.GetLatestState(ctx, id)
						storetest.Must(t, err)
						after := new(accountpb.Account)
						storetest.Must(t, read.GetResultingState().UnmarshalTo(after))
						if read.GetVersionNumber() != 1 || !maps.Equal(after.GetHoldsCents(), holds) {
							t.Fatalf("after the stop, version %d holds %v", read.GetVersionNumber(), after)
						}
						if fencing {
							err := store.WriteState(ctx, storetest.DurableState(id, 1, storetest.Account(t, id, 100), 9, 2))
							if !errors.Is(err, egostore.ErrFenced) {
								t.Fatalf("another state at the stored version was not fenced: %v", err)
							}
						}
						storetest.Must(t, store.WriteState(ctx, storetest.DurableState(id, 2, inOrder(t, id, reversed), 8, 2)))
					})
				}
			}
		}
	}
}

// putAny writes state over HTTP with its Any serialized as it is, as a writer before egostore's canonical
// bytes (or ego-contrib's store) did.
func putAny(t *testing.T, url string, state *egopb.DurableState) {
	t.Helper()
	payload, err := proto.Marshal(state.GetResultingState())
	storetest.Must(t, err)
	timestamp, shard := statestore.Int64(state.GetTimestamp()), statestore.Uint64(state.GetShard())
	put, err := storetest.HTTPAPI(t, url).PutStateWithResponse(t.Context(), state.GetPersistenceId(), nil, statestore.PutStateRequest{
		Manifest: "google.protobuf.Any", Payload: &payload, VersionNumber: statestore.Uint64(state.GetVersionNumber()),
		Timestamp: &timestamp, Shard: &shard,
	})
	if err != nil || put.JSON200 == nil && put.JSON201 == nil {
		t.Fatalf("PUT: %v, %s", err, put.Body)
	}
}

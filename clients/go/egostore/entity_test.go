package egostore_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/accountpb"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
)

// entity makes the store calls that eGo v4.4.3's DurableStateActor makes (durable_state_actor.go), for an
// account: Ping and GetLatestState when it starts (nothing stored: the initial state at version 0); after
// each command, WriteState of the new state at version+1 stamped with the command's time in nanoseconds;
// when it stops, WriteState of the state it holds at the same version, stamped with the time of its last
// command: the zero time.Time when it got none since it started. Like eGo, it takes the new state before
// the write, and keeps it when the write fails.
type entity struct {
	store       *egostore.Store
	id          string
	state       *accountpb.Account
	version     uint64
	lastCommand time.Time
	shard       uint64
}

func startEntity(t *testing.T, store *egostore.Store, id string) *entity {
	t.Helper()
	ctx := t.Context()
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := store.GetLatestState(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	started := &entity{store: store, id: id, state: new(accountpb.Account), shard: 5}
	if stored != nil {
		if err := stored.GetResultingState().UnmarshalTo(started.state); err != nil {
			t.Fatal(err)
		}
		started.version = stored.GetVersionNumber()
	}
	return started
}

// credit opens the account on its first command and adds cents (a debit when negative).
func (e *entity) credit(ctx context.Context, cents int64) error {
	e.state = &accountpb.Account{AccountId: e.id, BalanceCents: e.state.GetBalanceCents() + cents, Open: true}
	e.version++
	e.lastCommand = time.Now()
	return e.persist(ctx)
}

func (e *entity) stop(ctx context.Context) error {
	return e.persist(ctx)
}

func (e *entity) persist(ctx context.Context) error {
	state, err := anypb.New(e.state)
	if err != nil {
		return err
	}
	return e.store.WriteState(ctx, storetest.DurableState(e.id, e.version, state, e.lastCommand.UnixNano(), e.shard))
}

func (e *entity) holds(t *testing.T, balance int64, version uint64) {
	t.Helper()
	if e.state.GetBalanceCents() != balance || e.version != version {
		t.Fatalf("entity holds %v at version %d; want balance %d at version %d", e.state, e.version, balance, version)
	}
	if !proto.Equal(e.state, &accountpb.Account{AccountId: e.id, BalanceCents: balance, Open: true}) {
		t.Fatalf("entity holds %v", e.state)
	}
}

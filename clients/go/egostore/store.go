// Package egostore is an eGo durable state store (persistence.StateStore of github.com/tochemey/ego/v4)
// backed by the durable-state-store service over HTTP.
//
// It stores what ego-contrib's DynamoDB store stores for the same egopb.DurableState (the resulting state
// as a serialized google.protobuf.Any, its version, timestamp and shard), so actors on this store, actors
// on ego-contrib's store and HTTP clients can share one table. Unlike ego-contrib's store, GetLatestState
// returns the version number and the shard, and reads are strongly consistent.
package egostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tochemey/ego/v4/egopb"
	"github.com/tochemey/ego/v4/persistence"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

// anyManifest is the manifest of every state eGo writes: its resulting state is a google.protobuf.Any.
var anyManifest = string(proto.MessageName(&anypb.Any{}))

// Store keeps eGo's durable states in the durable-state-store service. It is safe for concurrent use.
type Store struct {
	baseURL string
	options options
	api     atomic.Pointer[statestore.ClientWithResponses]
	// held is the version of each persistence id that this store last read or wrote (string to uint64): the
	// one version whose re-write with the same content is eGo's stop-time write rather than a second writer's.
	held sync.Map
}

var _ persistence.StateStore = (*Store)(nil)

// New returns a store for the service at baseURL (such as "http://127.0.0.1:8080"); call Connect before use.
func New(baseURL string, opts ...Option) *Store {
	store := &Store{baseURL: baseURL, options: defaultOptions()}
	for _, opt := range opts {
		opt(&store.options)
	}
	return store
}

// Connect prepares the HTTP client; it does not call the service (Ping does).
func (s *Store) Connect(_ context.Context) error {
	doer := retrying{
		client: s.options.httpClient, apiKey: s.options.apiKey, retryFor: s.options.retryFor,
		inject: s.options.inject,
	}
	api, err := statestore.NewClientWithResponses(s.baseURL, statestore.WithHTTPClient(doer))
	if err != nil {
		return fmt.Errorf("egostore: connect to %s: %w", s.baseURL, err)
	}
	s.api.Store(api)
	return nil
}

// Disconnect ends the use of the HTTP client and closes its idle connections.
func (s *Store) Disconnect(_ context.Context) error {
	if s.api.Swap(nil) != nil {
		s.options.httpClient.CloseIdleConnections()
	}
	return nil
}

// Ping succeeds when the service is ready: its backend answers and its table exists.
func (s *Store) Ping(ctx context.Context) error {
	api, ctx, cancel, err := s.call(ctx, 0)
	if err != nil {
		return err
	}
	defer cancel()
	response, err := api.GetReadinessWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("egostore: ping: %w", err)
	}
	if response.StatusCode() != http.StatusOK {
		return fmt.Errorf("egostore: ping: %w", problemOf(response.HTTPResponse, response.Body))
	}
	return nil
}

// GetLatestState returns the stored state with its version, timestamp and shard, or nil, nil when none is.
// A state that an HTTP client wrote as its own message, not wrapped in an Any, comes back wrapped.
func (s *Store) GetLatestState(ctx context.Context, persistenceID string) (*egopb.DurableState, error) {
	api, ctx, cancel, err := s.call(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer cancel()
	response, err := api.GetStateWithResponse(ctx, persistenceID, nil)
	if err != nil {
		return nil, fmt.Errorf("egostore: read %q: %w", persistenceID, err)
	}
	state, err := durableStateOf(persistenceID, response)
	if err != nil {
		return nil, fmt.Errorf("egostore: read %q: %w", persistenceID, err)
	}
	if state != nil {
		s.held.Store(persistenceID, state.GetVersionNumber())
	} else {
		s.held.Delete(persistenceID)
	}
	return state, nil
}

// maxWait is the longest the service holds a request that waits for a change.
const maxWait = 60 * time.Second

// WaitForChange waits until the stored state of persistenceID differs from version, and returns it as
// GetLatestState does: the new state, or nil, nil once none is stored (deleted, expired, or never written).
// It asks the service to hold each request up to 60 s (less when ctx's deadline is nearer) and asks again
// until a change comes or ctx ends, when it returns ctx's error wrapped.
func (s *Store) WaitForChange(ctx context.Context, persistenceID string, version uint64) (*egopb.DurableState, error) {
	etag := strconv.Quote(strconv.FormatUint(version, 10))
	for {
		state, changed, err := s.waitOnce(ctx, persistenceID, etag)
		if err != nil {
			return nil, fmt.Errorf("egostore: wait for %q to change from version %d: %w", persistenceID, version, err)
		}
		if changed {
			return state, nil
		}
	}
}

// waitOnce is one request that waits for the state to differ from etag: changed is false when the service
// answered 304 (no change within the wait).
func (s *Store) waitOnce(ctx context.Context, persistenceID, etag string) (*egopb.DurableState, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	wait := maxWait
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(deadline), time.Second))
	}
	seconds := int(wait / time.Second)
	api, ctx, cancel, err := s.call(ctx, wait)
	if err != nil {
		return nil, false, err
	}
	defer cancel()
	response, err := api.GetStateWithResponse(ctx, persistenceID,
		&statestore.GetStateParams{Wait: &seconds, IfNoneMatch: &etag})
	switch {
	case err != nil:
		return nil, false, err
	case response.StatusCode() == http.StatusNotModified:
		return nil, false, nil
	}
	state, err := durableStateOf(persistenceID, response)
	return state, err == nil, err
}

// durableStateOf is the state a GET answered: nil for a 404, an error for any answer but a 200.
func durableStateOf(persistenceID string, response *statestore.GetStateResponse) (*egopb.DurableState, error) {
	switch {
	case response.StatusCode() == http.StatusNotFound:
		return nil, nil
	case response.JSON200 == nil:
		return nil, problemOf(response.HTTPResponse, response.Body)
	}
	stored := response.JSON200
	resulting, err := resultingState(stored.Manifest, stored.Payload)
	if err != nil {
		return nil, err
	}
	return &egopb.DurableState{
		PersistenceId:  persistenceID,
		VersionNumber:  uint64(stored.VersionNumber),
		ResultingState: resulting,
		Timestamp:      int64(stored.Timestamp),
		Shard:          uint64(stored.Shard),
	}, nil
}

func resultingState(manifest string, payload []byte) (*anypb.Any, error) {
	if manifest != anyManifest {
		return &anypb.Any{TypeUrl: "type.googleapis.com/" + manifest, Value: payload}, nil
	}
	resulting := new(anypb.Any)
	if err := proto.Unmarshal(payload, resulting); err != nil {
		return nil, fmt.Errorf("payload is not a %s: %w", anyManifest, err)
	}
	return resulting, nil
}

// WriteState stores the state; with WithFencing, only over the version it follows. Each call is one write
// named by an Idempotency-Key of its own, sent again on each of its retries, so that a retry after a lost
// answer finds its own write stored and succeeds, while another writer's identical write is refused.
func (s *Store) WriteState(ctx context.Context, state *egopb.DurableState) error {
	api, ctx, cancel, err := s.call(ctx, 0)
	if err != nil {
		return err
	}
	defer cancel()
	id, version := state.GetPersistenceId(), state.GetVersionNumber()
	payload, err := canonical(state.GetResultingState())
	if err != nil {
		return fmt.Errorf("egostore: write %q version %d: %w", id, version, err)
	}
	timestamp, shard := statestore.Int64(state.GetTimestamp()), statestore.Uint64(state.GetShard())
	body := statestore.PutStateRequest{
		Manifest: anyManifest, Payload: &payload, VersionNumber: statestore.Uint64(version),
		Timestamp: &timestamp, Shard: &shard,
	}
	key := statestore.NewIdempotencyKey()
	put := func(params statestore.PutStateParams) error {
		params.IdempotencyKey = &key
		response, err := api.PutStateWithResponse(ctx, id, &params, body)
		switch {
		case err != nil:
			return err
		case response.JSON200 != nil || response.JSON201 != nil:
			return nil
		}
		return problemOf(response.HTTPResponse, response.Body)
	}
	if !s.options.fencing {
		err = put(statestore.PutStateParams{})
	} else {
		err = fenced(put, version)
	}
	if err != nil && s.alreadyStored(ctx, api, state, err) {
		s.held.Delete(id) // the entity stops; it reads its state again when it starts
		return nil
	}
	if s.options.fencing && preconditionFailed(err) != nil {
		err = fmt.Errorf("%w: %w", ErrFenced, err)
	}
	if err != nil {
		return fmt.Errorf("egostore: write %q version %d: %w", id, version, err)
	}
	s.held.Store(id, version)
	return nil
}

// canonical is the serialized Any that egostore stores for state, the same bytes for equal states: the
// message inside re-serialized deterministically (map entries in key order) when its type is registered in
// protoregistry.GlobalTypes and its bytes parse, else the bytes as they are. eGo serializes the state it
// recovered again when the entity stops and writes it at the same version; without this, a map in the
// state could come out in another order than stored, and alreadyStored would have to parse both to find
// them equal. state itself is left as it is: eGo publishes it after the write.
func canonical(state *anypb.Any) ([]byte, error) {
	deterministic := proto.MarshalOptions{Deterministic: true}
	if inner, err := state.UnmarshalNew(); err == nil {
		if value, err := deterministic.Marshal(inner); err == nil {
			state = proto.CloneOf(state)
			state.Value = value
		}
	}
	return deterministic.Marshal(state)
}

// alreadyStored tells whether a write refused for finding its own version stored (412 under fencing, 409
// under the monotonic guard) is eGo's stop-time write: when an entity stops, eGo writes its current state
// again at the version already stored (version 0 and the initial state for an entity that never got a
// command), under a new Idempotency-Key, which the service rightly refuses, since nothing but content ties
// it to the stored write. It is one when this store itself last read or wrote that version of the id, and
// the stored message is equal by proto.Equal (its bytes may differ, as when an older writer serialized a
// map in another order). For eGo that write has nothing to do: it leaves the stored state (and its
// timestamp) in place. A second copy of the entity that computed the same next state read or wrote an
// older version, so its write stays refused: equal content never acknowledges another writer's write.
func (s *Store) alreadyStored(
	ctx context.Context, api *statestore.ClientWithResponses, state *egopb.DurableState, err error,
) bool {
	var problem *ProblemError
	if !errors.As(err, &problem) || problem.CurrentVersion == nil || *problem.CurrentVersion != state.GetVersionNumber() ||
		problem.Status != http.StatusPreconditionFailed && problem.Status != http.StatusConflict {
		return false
	}
	if held, ok := s.held.Load(state.GetPersistenceId()); !ok || held.(uint64) != state.GetVersionNumber() {
		return false
	}
	response, err := api.GetStateWithResponse(ctx, state.GetPersistenceId(), nil)
	if err != nil {
		return false
	}
	stored, err := durableStateOf(state.GetPersistenceId(), response)
	return err == nil && stored != nil && stored.GetVersionNumber() == state.GetVersionNumber() &&
		sameState(stored.GetResultingState(), state.GetResultingState())
}

// sameState compares the messages inside two Anys when their type is registered, else their bytes.
func sameState(a, b *anypb.Any) bool {
	if a.GetTypeUrl() != b.GetTypeUrl() {
		return false
	}
	innerA, errA := a.UnmarshalNew()
	innerB, errB := b.UnmarshalNew()
	if errA == nil && errB == nil {
		return proto.Equal(innerA, innerB)
	}
	return bytes.Equal(a.GetValue(), b.GetValue())
}

// fenced writes version v over version v-1 alone: for v = 1, over version 0 or nothing; for v = 0, over
// nothing. Each step is one atomic conditional write in the service.
func fenced(put func(statestore.PutStateParams) error, version uint64) error {
	if version >= 2 {
		previous := strconv.Quote(strconv.FormatUint(version-1, 10))
		return put(statestore.PutStateParams{IfMatch: &previous})
	}
	none := "*"
	err := put(statestore.PutStateParams{IfNoneMatch: &none})
	if problem := preconditionFailed(err); version == 1 && problem != nil && problem.CurrentVersion != nil &&
		*problem.CurrentVersion == 0 {
		zero := `"0"`
		return put(statestore.PutStateParams{IfMatch: &zero})
	}
	return err
}

// preconditionFailed is err's problem when it is a 412, else nil.
func preconditionFailed(err error) *ProblemError {
	var problem *ProblemError
	if errors.As(err, &problem) && problem.Status == http.StatusPreconditionFailed {
		return problem
	}
	return nil
}

// call is the connected client and the call's context, bounded by the store's timeout plus held, the time
// the service is asked to hold the request.
func (s *Store) call(
	ctx context.Context, held time.Duration,
) (*statestore.ClientWithResponses, context.Context, context.CancelFunc, error) {
	api := s.api.Load()
	if api == nil {
		return nil, nil, nil, ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, s.options.timeout+held)
	return api, ctx, cancel, nil
}

// Command conformance drives a live service through the client that oapi-codegen generates from
// openapi/openapi.json into this package (client.gen.go, written by the test, never committed), and checks
// every 64-bit value exactly. Every write carries an Idempotency-Key of its own, and a write and a transaction
// are retried with theirs.
//
// Usage: conformance BASE_URL API_KEY ID_PREFIX
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

const (
	maxUint64   uint64 = math.MaxUint64
	aboveDouble uint64 = 1<<53 + 1 // the first integer a JSON number in JavaScript rounds
	egoNanos    int64  = 1764115200123456789
	goZeroTime  int64  = -62135596800 // an eGo actor stopped before any command
	shard       uint64 = 3
	// Only the listing step's states are in this shard, above 2^53: a filter sent as a JSON number in
	// JavaScript would name another.
	listedShard uint64 = aboveDouble
	listingPage        = 2 // a page smaller than the states listed, so that the walk follows next_page_token
	manifest           = "google.protobuf.StringValue"
)

var payload = []byte("\x0a\x02hi") // StringValue{value: "hi"}

// The step that runs, for failure messages.
var step string

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "step %s failed: %s\n", step, fmt.Sprintf(format, args...))
	os.Exit(1)
}

func expectSame(what string, got, want any) {
	if !reflect.DeepEqual(got, want) {
		fail("%s: want %#v, got %#v", what, want, got)
	}
}

// expectSameFields compares two answers field by field, as JSON, so that the first value that differs is named.
func expectSameFields(what string, got, want any) {
	gotFields, wantFields := fields(got), fields(want)
	names := maps.Clone(wantFields)
	maps.Copy(names, gotFields)
	for _, name := range slices.Sorted(maps.Keys(names)) {
		expectSame(what+" "+name, gotFields[name], wantFields[name])
	}
}

func fields(answer any) map[string]any {
	encoded, err := json.Marshal(answer)
	must(err)
	var decoded map[string]any
	must(json.Unmarshal(encoded, &decoded))
	return decoded
}

// A 64-bit field arrives as a decimal string holding exactly the value.
func expectUint64(what, got string, want uint64) {
	expectSame(what+" (as a decimal string)", got, strconv.FormatUint(want, 10))
}

func expectInt64(what, got string, want int64) {
	expectSame(what+" (as a decimal string)", got, strconv.FormatInt(want, 10))
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func quoted(version uint64) *string {
	etag := strconv.Quote(strconv.FormatUint(version, 10))
	return &etag
}

// newKey is a new Idempotency-Key, a Structured Field string: one per write, the same on each of its retries.
func newKey() *string {
	key := strconv.Quote(uuid.NewString())
	return &key
}

type conformance struct {
	ctx                    context.Context
	client                 *ClientWithResponses
	prefix                 string
	id, otherID, missingID string
	waitedID               string
}

func expectNumbers(what, version, timestamp, shardNumber string, wantVersion uint64, wantTimestamp int64) {
	expectNumbersInShard(what, version, timestamp, shardNumber, wantVersion, wantTimestamp, shard)
}

func expectNumbersInShard(what, version, timestamp, shardNumber string, wantVersion uint64, wantTimestamp int64,
	wantShard uint64) {
	expectUint64(what+" version_number", version, wantVersion)
	expectInt64(what+" timestamp", timestamp, wantTimestamp)
	expectUint64(what+" shard", shardNumber, wantShard)
}

func expectWritten(what string, got *StateWritten, version uint64, timestamp int64) {
	if got == nil {
		fail("%s: no state in the answer", what)
	}
	expectNumbers(what, got.VersionNumber, got.Timestamp, got.Shard, version, timestamp)
	expectSame(what+" manifest", got.Manifest, manifest)
}

func (c *conformance) read(what, id string, version uint64, timestamp int64) {
	got, err := c.client.GetStateWithResponse(c.ctx, id, nil)
	must(err)
	state := got.JSON200
	if state == nil {
		fail("%s: status %d, %q", what, got.StatusCode(), got.Body)
	}
	expectNumbers(what, state.VersionNumber, state.Timestamp, state.Shard, version, timestamp)
	expectSame(what+" manifest", state.Manifest, manifest)
	expectSame(what+" payload", state.Payload, payload)
	expectSame(what+" persistence_id", state.PersistenceId, id)
	expectSame(what+" ETag", got.HTTPResponse.Header.Get("ETag"), *quoted(version))
}

func (c *conformance) expectAbsent(what, id string) {
	got, err := c.client.GetStateWithResponse(c.ctx, id, nil)
	must(err)
	expectSame(what+" status", got.StatusCode(), http.StatusNotFound)
}

// numbersBody is a state with each 64-bit value as a JSON number.
func numbersBody(version uint64, timestamp int64, shardNumber uint64) PutStateJSONRequestBody {
	body := PutStateJSONRequestBody{Manifest: manifest, Payload: &payload}
	must(body.VersionNumber.FromPutStateRequestVersionNumber1(version))
	body.Timestamp = &PutStateRequest_Timestamp{}
	must(body.Timestamp.FromPutStateRequestTimestamp1(timestamp))
	body.Shard = &PutStateRequest_Shard{}
	must(body.Shard.FromPutStateRequestShard1(shardNumber))
	return body
}

// putWhereNone writes a state where none is (If-None-Match: *).
func (c *conformance) putWhereNone(id string, body PutStateJSONRequestBody, key *string) *PutStateResponse {
	anyState := "*"
	params := &PutStateParams{IfNoneMatch: &anyState, IdempotencyKey: key}
	got, err := c.client.PutStateWithResponse(c.ctx, id, params, body)
	must(err)
	return got
}

func (c *conformance) create(what, id string, body PutStateJSONRequestBody, key *string) *PutStateResponse {
	got := c.putWhereNone(id, body, key)
	expectSame(what+" status", got.StatusCode(), http.StatusCreated)
	return got
}

func (c *conformance) write() {
	body, key := numbersBody(aboveDouble, egoNanos, shard), newKey()
	first := c.create("write", c.id, body, key)
	expectWritten("write", first.JSON201, aboveDouble, egoNanos)
	expectSame("write ETag", first.HTTPResponse.Header.Get("ETag"), *quoted(aboveDouble))
	// As after a lost answer: the retry's condition fails, but it finds its own write stored.
	retried := c.create("write retried with its key", c.id, body, key)
	expectSame("write retried with its key: ETag", retried.HTTPResponse.Header.Get("ETag"), *quoted(aboveDouble))
	expectSameFields("write retried with its key:", retried.JSON201, first.JSON201)
	again := c.putWhereNone(c.id, body, newKey())
	expectSame("write sent again with a new key: status", again.StatusCode(), http.StatusPreconditionFailed)
	problem := again.ApplicationproblemJSON412
	if problem == nil || problem.CurrentVersion == nil {
		fail("write sent again with a new key: no current_version in the problem %q", again.Body)
	}
	expectUint64("write sent again with a new key: current_version", *problem.CurrentVersion, aboveDouble)
}

func (c *conformance) readAndHead() {
	c.read("read", c.id, aboveDouble, egoNanos)
	got, err := c.client.HeadStateWithResponse(c.ctx, c.id, nil)
	must(err)
	expectSame("head status", got.StatusCode(), http.StatusOK)
	expectSame("head ETag", got.HTTPResponse.Header.Get("ETag"), *quoted(aboveDouble))
}

func (c *conformance) compareAndSet() {
	// The string form of each number, as a client holding the text would send it.
	body := PutStateJSONRequestBody{Manifest: manifest, Payload: &payload}
	must(body.VersionNumber.FromPutStateRequestVersionNumber0(strconv.FormatUint(maxUint64, 10)))
	body.Timestamp = &PutStateRequest_Timestamp{}
	must(body.Timestamp.FromPutStateRequestTimestamp0(strconv.FormatInt(goZeroTime, 10)))
	body.Shard = &PutStateRequest_Shard{}
	must(body.Shard.FromPutStateRequestShard0(strconv.FormatUint(shard, 10)))
	params := &PutStateParams{IfMatch: quoted(aboveDouble), IdempotencyKey: newKey()}
	got, err := c.client.PutStateWithResponse(c.ctx, c.id, params, body)
	must(err)
	expectSame("compare-and-set status", got.StatusCode(), http.StatusOK)
	expectWritten("compare-and-set", got.JSON200, maxUint64, goZeroTime)
	c.read("read after compare-and-set", c.id, maxUint64, goZeroTime)
}

func (c *conformance) staleCompareAndSet() {
	body := PutStateJSONRequestBody{Manifest: manifest, Payload: &payload}
	must(body.VersionNumber.FromPutStateRequestVersionNumber1(1))
	params := &PutStateParams{IfMatch: quoted(aboveDouble), IdempotencyKey: newKey()}
	got, err := c.client.PutStateWithResponse(c.ctx, c.id, params, body)
	must(err)
	expectSame("stale compare-and-set status", got.StatusCode(), http.StatusPreconditionFailed)
	problem := got.ApplicationproblemJSON412
	if problem == nil || problem.CurrentVersion == nil {
		fail("stale compare-and-set: no current_version in the problem %q", got.Body)
	}
	expectUint64("stale compare-and-set current_version", *problem.CurrentVersion, maxUint64)
}

func (c *conformance) batchGet() {
	var states []State
	var missing []string
	for ask := []string{c.id, c.missingID}; len(ask) > 0; {
		got, err := c.client.BatchGetStatesWithResponse(c.ctx, nil, BatchGetStatesJSONRequestBody{PersistenceIds: ask})
		must(err)
		if got.JSON200 == nil {
			fail("batchGet: status %d, %q", got.StatusCode(), got.Body)
		}
		states = append(states, got.JSON200.States...)
		missing = append(missing, got.JSON200.Missing...)
		ask = got.JSON200.Unprocessed
	}
	expectSame("batchGet number of states", len(states), 1)
	expectNumbers("batchGet", states[0].VersionNumber, states[0].Timestamp, states[0].Shard, maxUint64, goZeroTime)
	expectSame("batchGet missing", missing, []string{c.missingID})
}

func (c *conformance) transaction() {
	put := TransactPut{Op: Put, PersistenceId: c.otherID, Manifest: manifest, Payload: &payload}
	must(put.VersionNumber.FromTransactPutVersionNumber1(aboveDouble))
	put.Timestamp = &TransactPut_Timestamp{}
	must(put.Timestamp.FromTransactPutTimestamp1(egoNanos))
	put.Shard = &TransactPut_Shard{}
	must(put.Shard.FromTransactPutShard1(shard))
	createOnly := True
	put.IfNoneMatch = &createOnly
	remove := TransactDelete{Op: Delete, PersistenceId: c.id, IfMatch: &TransactDelete_IfMatch{}}
	must(remove.IfMatch.FromTransactDeleteIfMatch1(maxUint64))
	operations := make([]TransactRequest_Operations_Item, 2)
	must(operations[0].FromTransactPut(put))
	must(operations[1].FromTransactDelete(remove))

	body, key := TransactStatesJSONRequestBody{Operations: operations}, newKey()
	transact := func(what string, withKey *string) *TransactStatesResponse {
		got, err := c.client.TransactStatesWithResponse(c.ctx, &TransactStatesParams{IdempotencyKey: withKey}, body)
		must(err)
		if got.JSON200 == nil {
			fail("%s: status %d, %q", what, got.StatusCode(), got.Body)
		}
		return got
	}
	got := transact("transaction", key)
	results := got.JSON200.Results
	expectSame("transaction number of results", len(results), 2)
	expectSame("transaction put persistence_id", results[0].PersistenceId, c.otherID)
	if results[0].VersionNumber == nil || results[0].Etag == nil {
		fail("transaction put: no version_number or etag in %q", got.Body)
	}
	expectUint64("transaction put version_number", *results[0].VersionNumber, aboveDouble)
	expectSame("transaction put etag", *results[0].Etag, *quoted(aboveDouble))
	expectSame("transaction delete persistence_id", results[1].PersistenceId, c.id)
	// Both conditions now fail; the retry finds its put stored with its key, so its delete is done too.
	retried := transact("transaction retried with its key", key).JSON200.Results
	expectSame("transaction retried with its key: number of results", len(retried), len(results))
	for index, result := range retried {
		expectSameFields(fmt.Sprintf("transaction retried with its key: result %d", index), result, results[index])
	}
	again, err := c.client.TransactStatesWithResponse(c.ctx, &TransactStatesParams{IdempotencyKey: newKey()}, body)
	must(err)
	expectSame("transaction sent again with a new key: status", again.StatusCode(), http.StatusPreconditionFailed)
	problem := again.ApplicationproblemJSON412
	if problem == nil || problem.OperationIndex == nil || problem.CurrentVersion == nil {
		fail("transaction sent again with a new key: no operation_index or current_version in %q", again.Body)
	}
	expectSame("transaction sent again with a new key: operation_index", *problem.OperationIndex, 0)
	expectUint64("transaction sent again with a new key: current_version", *problem.CurrentVersion, aboveDouble)
	c.read("read after transaction", c.otherID, aboveDouble, egoNanos)
	c.expectAbsent("read of the state the transaction deleted", c.id)
}

func (c *conformance) delete() {
	stale, err := c.client.DeleteStateWithResponse(c.ctx, c.otherID, &DeleteStateParams{IfMatch: quoted(1)})
	must(err)
	expectSame("stale delete status", stale.StatusCode(), http.StatusPreconditionFailed)
	got, err := c.client.DeleteStateWithResponse(c.ctx, c.otherID, &DeleteStateParams{IfMatch: quoted(aboveDouble)})
	must(err)
	expectSame("delete status", got.StatusCode(), http.StatusNoContent)
	c.expectAbsent("read after delete", c.otherID)
}

func (c *conformance) listing() {
	var listedIDs []string
	for n := range 3 {
		id := fmt.Sprintf("%s/listed %d", c.prefix, n)
		c.create("listing: write of "+id, id, numbersBody(maxUint64, egoNanos, listedShard), newKey())
		listedIDs = append(listedIDs, id)
	}
	var found []ListedState
	// The document types the filter as a string of decimal digits, exact in every language.
	limit, shardFilter := listingPage, strconv.FormatUint(listedShard, 10)
	params := &ListStatesParams{Limit: &limit, Shard: &shardFilter}
	pages := 0
	for pages == 0 || params.PageToken != nil {
		pages++
		got, err := c.client.ListStatesWithResponse(c.ctx, params)
		must(err)
		if got.JSON200 == nil {
			fail("listing page %d: status %d, %q", pages, got.StatusCode(), got.Body)
		}
		found = append(found, got.JSON200.States...)
		params.PageToken = got.JSON200.NextPageToken
	}
	var ours []ListedState
	for _, state := range found { // the shard filter holds for every state, other programs' too
		expectUint64(fmt.Sprintf("listing %q shard", state.PersistenceId), state.Shard, listedShard)
		if strings.HasPrefix(state.PersistenceId, c.prefix+"/") {
			ours = append(ours, state)
		}
	}
	slices.SortFunc(ours, func(a, b ListedState) int { return strings.Compare(a.PersistenceId, b.PersistenceId) })
	var ids []string
	for _, state := range ours {
		ids = append(ids, state.PersistenceId)
		expectNumbersInShard(fmt.Sprintf("listing %q", state.PersistenceId), state.VersionNumber, state.Timestamp,
			state.Shard, maxUint64, egoNanos, listedShard)
		expectSame(fmt.Sprintf("listing %q manifest", state.PersistenceId), state.Manifest, manifest)
	}
	expectSame("listing ids", ids, listedIDs)
	if pages < 2 {
		fail("one page of %d states, want more pages of at most %d", len(found), listingPage)
	}
}

func (c *conformance) wait() {
	c.create("wait: first write", c.waitedID, numbersBody(aboveDouble, egoNanos, shard), newKey())
	wait := 2
	params := &GetStateParams{Wait: &wait, IfNoneMatch: quoted(aboveDouble)}
	unchanged, err := c.client.GetStateWithResponse(c.ctx, c.waitedID, params)
	must(err)
	expectSame("wait on a state nobody writes: status", unchanged.StatusCode(), http.StatusNotModified)
	next := numbersBody(maxUint64, egoNanos, shard)
	written, err := c.client.PutStateWithResponse(c.ctx, c.waitedID,
		&PutStateParams{IfMatch: quoted(aboveDouble), IdempotencyKey: newKey()}, next)
	must(err)
	expectSame("wait: second write status", written.StatusCode(), http.StatusOK)
	changed, err := c.client.GetStateWithResponse(c.ctx, c.waitedID, params)
	must(err)
	state := changed.JSON200
	if state == nil {
		fail("wait with the old version: status %d, %q", changed.StatusCode(), changed.Body)
	}
	expectNumbers("wait with the old version", state.VersionNumber, state.Timestamp, state.Shard, maxUint64, egoNanos)
	expectSame("wait with the old version: ETag", changed.HTTPResponse.Header.Get("ETag"), *quoted(maxUint64))
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: conformance BASE_URL API_KEY ID_PREFIX")
		os.Exit(2)
	}
	baseURL, apiKey, prefix := os.Args[1], os.Args[2], os.Args[3]
	client, err := NewClientWithResponses(baseURL, WithRequestEditorFn(
		func(_ context.Context, request *http.Request) error {
			request.Header.Set("Authorization", "Bearer "+apiKey)
			return nil
		}))
	must(err)
	c := &conformance{
		ctx: context.Background(), client: client,
		prefix: prefix, id: prefix + "/order 42|é:1", otherID: prefix + "/order 43", missingID: prefix + "/never written",
		waitedID: prefix + "/waited on",
	}
	steps := []struct {
		name string
		run  func()
	}{
		{"write", c.write},
		{"read", c.readAndHead},
		{"compare-and-set", c.compareAndSet},
		{"stale compare-and-set", c.staleCompareAndSet},
		{"batchGet", c.batchGet},
		{"transaction", c.transaction},
		{"delete", c.delete},
		{"listing", c.listing},
		{"wait", c.wait},
	}
	for _, s := range steps {
		step = s.name
		s.run()
		fmt.Println("ok", s.name)
	}
}

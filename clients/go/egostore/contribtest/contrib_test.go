package contribtest

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	contrib "github.com/tochemey/ego-contrib/durablestore/dynamodb"
	"github.com/tochemey/ego/v4/egopb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/accountpb"
	"github.com/durable-state-store/durable-state-store/clients/go/egostore/internal/storetest"
	"github.com/durable-state-store/durable-state-store/clients/go/internal/livetest"
	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

// table is the live service's DynamoDB table, reached directly as ego-contrib's store reaches it.
type table struct {
	name   string
	client *dynamodb.Client
}

func liveTable(t *testing.T) table {
	t.Helper()
	endpoint := livetest.Env(t, "LIVE_DYNAMODB_ENDPOINT")
	return table{
		name: livetest.Env(t, "LIVE_DYNAMODB_TABLE"),
		client: dynamodb.New(dynamodb.Options{
			BaseEndpoint: aws.String(endpoint),
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		}),
	}
}

func (tb table) item(t *testing.T, id string) map[string]types.AttributeValue {
	t.Helper()
	read, err := tb.client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(tb.name),
		Key:            map[string]types.AttributeValue{"PersistenceID": &types.AttributeValueMemberS{Value: id}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil || read.Item == nil {
		t.Fatalf("item %q: %v", id, err)
	}
	return read.Item
}

// One table, three writers: ego-contrib's store writing DynamoDB directly, egostore, and a PUT over HTTP.
// Each reads what the others wrote, and the items they write are the same attribute by attribute.
func TestEGoContribEgostoreAndHTTPShareOneTable(t *testing.T) {
	url := livetest.URL(t, "dynamodb")
	ddb := liveTable(t)
	direct := contrib.NewDurableStore(ddb.name, ddb.client)
	store := storetest.Connected(t, url)
	api := storetest.HTTPAPI(t, url)
	ctx := t.Context()

	state := storetest.Account(t, "shared", 4200)
	timestamp := time.Now().UnixNano()
	written := func(id string) *egopb.DurableState { return storetest.DurableState(id, 3, state, timestamp, 7) }
	byContrib, byEgostore, byHTTP, absent := storetest.EntityID(t), storetest.EntityID(t), storetest.EntityID(t), storetest.EntityID(t)

	storetest.Must(t, direct.WriteState(ctx, written(byContrib)))
	storetest.Must(t, store.WriteState(ctx, written(byEgostore)))
	payload, err := proto.Marshal(state)
	storetest.Must(t, err)
	wireTimestamp, shard := statestore.Int64(timestamp), statestore.Uint64(7)
	put, err := api.PutStateWithResponse(ctx, byHTTP, nil, statestore.PutStateRequest{
		Manifest: "google.protobuf.Any", Payload: &payload, VersionNumber: 3, Timestamp: &wireTimestamp, Shard: &shard,
	})
	if err != nil || put.StatusCode() != http.StatusOK && put.StatusCode() != http.StatusCreated {
		t.Fatalf("PUT: %v, %s", err, put.Body)
	}
	ids := []string{byContrib, byEgostore, byHTTP}

	decode := true
	batch, err := api.BatchGetStatesWithResponse(ctx, &statestore.BatchGetStatesParams{Decode: &decode},
		statestore.BatchGetRequest{PersistenceIds: append(slices.Clone(ids), absent)})
	if err != nil || batch.JSON200 == nil {
		t.Fatalf("batchGet: %v, %s", err, batch.Body)
	}
	if !slices.Equal(batch.JSON200.Missing, []string{absent}) || len(batch.JSON200.States) != len(ids) {
		t.Fatalf("batchGet found %d states, missing %v", len(batch.JSON200.States), batch.JSON200.Missing)
	}
	for _, id := range ids {
		single, err := api.GetStateWithResponse(ctx, id, &statestore.GetStateParams{Decode: &decode})
		if err != nil || single.JSON200 == nil {
			t.Fatalf("GET %q: %v, %s", id, err, single.Body)
		}
		batched := batch.JSON200.States[slices.IndexFunc(batch.JSON200.States,
			func(s statestore.State) bool { return s.PersistenceId == id })]
		for _, read := range []statestore.State{*single.JSON200, batched} {
			decoded, _ := (*read.State).(map[string]any)
			if read.Manifest != "google.protobuf.Any" || !bytes.Equal(read.Payload, payload) || read.VersionNumber != 3 ||
				read.Timestamp != wireTimestamp || read.Shard != 7 || decoded["balanceCents"] != "4200" ||
				decoded["@type"] != "type.googleapis.com/acme.bank.v1.Account" {
				t.Fatalf("the service reads %q as %+v, state %v", id, read, decoded)
			}
		}

		recovered, err := store.GetLatestState(ctx, id)
		storetest.Must(t, err)
		storetest.MustEqual(t, recovered, written(id))

		// ego-contrib's read drops the version and the shard: an actor recovered through it restarts at 0.
		recovered, err = direct.GetLatestState(ctx, id)
		storetest.Must(t, err)
		storetest.MustEqual(t, recovered, &egopb.DurableState{PersistenceId: id, ResultingState: state, Timestamp: timestamp})
	}

	reference := ddb.item(t, byContrib)
	delete(reference, "PersistenceID")
	for _, id := range ids[1:] {
		item := ddb.item(t, id)
		if item["PersistenceID"].(*types.AttributeValueMemberS).Value != id {
			t.Fatalf("item %q has key %v", id, item["PersistenceID"])
		}
		delete(item, "PersistenceID")
		if !maps.EqualFunc(item, reference, sameAttribute) {
			t.Fatalf("item of %q differs from ego-contrib's:\n%#v\n%#v", id, item, reference)
		}
	}
}

func sameAttribute(a, b types.AttributeValue) bool {
	switch a := a.(type) {
	case *types.AttributeValueMemberS:
		b, ok := b.(*types.AttributeValueMemberS)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberN:
		b, ok := b.(*types.AttributeValueMemberN)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberB:
		b, ok := b.(*types.AttributeValueMemberB)
		return ok && bytes.Equal(a.Value, b.Value)
	}
	return false
}

// What ego-contrib's store cannot read, egostore and the service can: an item without the attributes that
// the service reads as 0, and a state that an HTTP client wrote as its own message rather than in an Any.
func TestEgostoreReadsWhatEGoContribCannot(t *testing.T) {
	url := livetest.URL(t, "dynamodb")
	ddb := liveTable(t)
	direct := contrib.NewDurableStore(ddb.name, ddb.client)
	store := storetest.Connected(t, url)
	ctx := t.Context()

	sparse := storetest.EntityID(t)
	state := storetest.Account(t, sparse, 1)
	payload, err := proto.Marshal(state)
	storetest.Must(t, err)
	_, err = ddb.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(ddb.name), Item: map[string]types.AttributeValue{
		"PersistenceID": &types.AttributeValueMemberS{Value: sparse},
		"StateManifest": &types.AttributeValueMemberS{Value: "google.protobuf.Any"},
		"StatePayload":  &types.AttributeValueMemberB{Value: payload},
	}})
	storetest.Must(t, err)
	recovered, err := store.GetLatestState(ctx, sparse)
	storetest.Must(t, err)
	storetest.MustEqual(t, recovered, storetest.DurableState(sparse, 0, state, 0, 0))
	if !panics(func() { _, _ = direct.GetLatestState(ctx, sparse) }) {
		t.Fatal("ego-contrib's store read an item without VersionNumber, Timestamp and ShardNumber")
	}

	unwrapped := storetest.EntityID(t)
	inner, err := proto.Marshal(&accountpb.Account{AccountId: unwrapped, BalanceCents: 2})
	storetest.Must(t, err)
	put, err := storetest.HTTPAPI(t, url).PutStateWithResponse(ctx, unwrapped, nil, statestore.PutStateRequest{
		Manifest: "acme.bank.v1.Account", Payload: &inner, VersionNumber: 1,
	})
	if err != nil || put.StatusCode() != http.StatusOK && put.StatusCode() != http.StatusCreated {
		t.Fatalf("PUT: %v, %s", err, put.Body)
	}
	recovered, err = store.GetLatestState(ctx, unwrapped)
	storetest.Must(t, err)
	if want := (&anypb.Any{TypeUrl: "type.googleapis.com/acme.bank.v1.Account", Value: inner}); !proto.Equal(recovered.GetResultingState(), want) {
		t.Fatalf("egostore recovered %v", recovered)
	}
	if _, err := direct.GetLatestState(ctx, unwrapped); err == nil {
		t.Fatal("ego-contrib's store read a state whose manifest is not google.protobuf.Any")
	}
}

func panics(call func()) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	call()
	return false
}

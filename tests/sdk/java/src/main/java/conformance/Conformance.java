package conformance;

import com.fasterxml.jackson.core.type.TypeReference;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;
import statestore.api.StatesApi;
import statestore.client.ApiClient;
import statestore.client.ApiException;
import statestore.client.ApiResponse;
import statestore.model.BatchGetRequest;
import statestore.model.BatchGetResponse;
import statestore.model.IfMatch;
import statestore.model.ListedState;
import statestore.model.OperationsInner;
import statestore.model.Problem;
import statestore.model.PutStateRequest;
import statestore.model.Shard;
import statestore.model.State;
import statestore.model.StatePage;
import statestore.model.StateWritten;
import statestore.model.TransactDelete;
import statestore.model.TransactPut;
import statestore.model.TransactRequest;
import statestore.model.TimestampValue;
import statestore.model.TransactResult;
import statestore.model.VersionNumber;

/**
 * Drives a live service through the client that openapi-generator generates from openapi/openapi.json, and
 * checks every 64-bit value exactly. Every write carries an Idempotency-Key of its own, and a write and a
 * transaction are retried with theirs. Usage: Conformance BASE_URL API_KEY ID_PREFIX
 */
public final class Conformance {
  static final BigInteger MAX_UINT64 = BigInteger.TWO.pow(64).subtract(BigInteger.ONE);
  /** 2^53 + 1: the first integer a JSON number in JavaScript rounds. */
  static final BigInteger ABOVE_DOUBLE = BigInteger.TWO.pow(53).add(BigInteger.ONE);
  static final long EGO_NANOS = 1764115200123456789L;
  /** An eGo actor stopped before any command. */
  static final long GO_ZERO_TIME = -62135596800L;
  static final BigInteger SHARD = BigInteger.valueOf(3);
  /** Only the listing step's states are in this shard: above 2^53, which a JSON number would round. */
  static final BigInteger LISTED_SHARD = ABOVE_DOUBLE;
  /** A page smaller than the states listed, so that the walk follows next_page_token. */
  static final int LISTING_PAGE = 2;
  static final String MANIFEST = "google.protobuf.StringValue";
  /** StringValue{value: "hi"}. */
  static final byte[] PAYLOAD = "\n\u0002hi".getBytes(StandardCharsets.UTF_8);
  /** An answer as its JSON fields, to compare two answers field by field. */
  static final TypeReference<Map<String, Object>> FIELDS = new TypeReference<>() {};

  static final class Mismatch extends Exception {
    Mismatch(String message) {
      super(message);
    }
  }

  interface Step {
    void run() throws Exception;
  }

  record NamedStep(String name, Step step) {}

  private final ApiClient client = new ApiClient();
  private final StatesApi states;
  private final String id;
  private final String otherId;
  private final String missingId;
  private final String prefix;
  private final String waitedId;

  Conformance(String baseUrl, String apiKey, String prefix) {
    client.updateBaseUri(baseUrl);
    client.setRequestInterceptor(request -> request.header("Authorization", "Bearer " + apiKey));
    states = new StatesApi(client); // copies the client's settings: made once they are set
    id = prefix + "/order 42|é:1";
    otherId = prefix + "/order 43";
    missingId = prefix + "/never written";
    this.prefix = prefix;
    waitedId = prefix + "/waited on";
  }

  static void expectSame(String what, Object got, Object want) throws Mismatch {
    boolean same = got instanceof byte[] bytes ? Arrays.equals(bytes, (byte[]) want) : Objects.equals(got, want);
    if (!same) {
      throw new Mismatch(what + ": want " + describe(want) + ", got " + describe(got));
    }
  }

  static String describe(Object value) {
    return value instanceof byte[] bytes ? Arrays.toString(bytes) : String.valueOf(value);
  }

  /** A 64-bit field arrives as a decimal string holding exactly the value. */
  static void expect64(String what, String got, Object want) throws Mismatch {
    expectSame(what + " (as a decimal string)", got, want.toString());
  }

  /** Two answers, field by field as JSON, so that the first value that differs is named. */
  void expectSameFields(String what, Object got, Object want) throws Mismatch {
    Map<String, Object> gotFields = client.getObjectMapper().convertValue(got, FIELDS);
    Map<String, Object> wantFields = client.getObjectMapper().convertValue(want, FIELDS);
    Set<String> names = new LinkedHashSet<>(wantFields.keySet());
    names.addAll(gotFields.keySet());
    for (String name : names) {
      expectSame(what + " " + name, gotFields.get(name), wantFields.get(name));
    }
  }

  static String quoted(BigInteger version) {
    return "\"" + version + "\"";
  }

  /** A new Idempotency-Key, a Structured Field string: one per write, the same on each of its retries. */
  static String newKey() {
    return "\"" + UUID.randomUUID() + "\"";
  }

  static void expectNumbers(
      String what, String version, String timestamp, String shard, BigInteger wantVersion, long wantTimestamp)
      throws Mismatch {
    expectNumbers(what, version, timestamp, shard, wantVersion, wantTimestamp, SHARD);
  }

  static void expectNumbers(
      String what,
      String version,
      String timestamp,
      String shard,
      BigInteger wantVersion,
      long wantTimestamp,
      BigInteger wantShard)
      throws Mismatch {
    expect64(what + " version_number", version, wantVersion);
    expect64(what + " timestamp", timestamp, wantTimestamp);
    expect64(what + " shard", shard, wantShard);
  }

  static void expectWritten(String what, StateWritten got, BigInteger version, long timestamp) throws Mismatch {
    expectNumbers(what, got.getVersionNumber(), got.getTimestamp(), got.getShard(), version, timestamp);
    expectSame(what + " manifest", got.getManifest(), MANIFEST);
  }

  static String etag(ApiResponse<?> response) {
    return response.getHeaders().getOrDefault("ETag", List.of()).stream().findFirst().orElse(null);
  }

  void read(String what, String persistenceId, BigInteger version, long timestamp) throws Exception {
    ApiResponse<State> response = states.getStateWithHttpInfo(persistenceId, null, null, null, null);
    State state = response.getData();
    expectNumbers(what, state.getVersionNumber(), state.getTimestamp(), state.getShard(), version, timestamp);
    expectSame(what + " manifest", state.getManifest(), MANIFEST);
    expectSame(what + " payload", state.getPayload(), PAYLOAD);
    expectSame(what + " persistence_id", state.getPersistenceId(), persistenceId);
    expectSame(what + " ETag", etag(response), quoted(version));
  }

  /** The problem of a call that must fail with this status. */
  Problem expectProblem(String what, int status, Step call) throws Exception {
    try {
      call.run();
    } catch (ApiException failure) {
      expectSame(what + " status", failure.getCode(), status);
      return client.getObjectMapper().readValue(failure.getResponseBody(), Problem.class);
    }
    throw new Mismatch(what + ": want status " + status + ", got a success");
  }

  void expectAbsent(String what, String persistenceId) throws Exception {
    expectProblem(what, 404, () -> states.getStateWithHttpInfo(persistenceId, null, null, null, null));
  }

  /** A state with each 64-bit value as a JSON number. */
  static PutStateRequest numbersBody(BigInteger version, long timestamp, BigInteger shard) {
    return new PutStateRequest()
        .manifest(MANIFEST)
        .payload(PAYLOAD)
        .versionNumber(new VersionNumber(version))
        .timestamp(new TimestampValue(timestamp))
        .shard(new Shard(shard));
  }

  /** Writes a state where none is (If-None-Match: *). */
  ApiResponse<StateWritten> create(String what, String persistenceId, PutStateRequest body, String key)
      throws Exception {
    ApiResponse<StateWritten> response = states.putStateWithHttpInfo(persistenceId, body, null, "*", key);
    expectSame(what + " status", response.getStatusCode(), 201);
    return response;
  }

  void write() throws Exception {
    PutStateRequest body = numbersBody(ABOVE_DOUBLE, EGO_NANOS, SHARD);
    String key = newKey();
    ApiResponse<StateWritten> first = create("write", id, body, key);
    expectWritten("write", first.getData(), ABOVE_DOUBLE, EGO_NANOS);
    expectSame("write ETag", etag(first), quoted(ABOVE_DOUBLE));
    // As after a lost answer: the retry's condition fails, but it finds its own write stored.
    ApiResponse<StateWritten> retried = create("write retried with its key", id, body, key);
    expectSame("write retried with its key: ETag", etag(retried), quoted(ABOVE_DOUBLE));
    expectSameFields("write retried with its key:", retried.getData(), first.getData());
    Problem problem =
        expectProblem(
            "write sent again with a new key:", 412, () -> states.putStateWithHttpInfo(id, body, null, "*", newKey()));
    expect64("write sent again with a new key: current_version", problem.getCurrentVersion(), ABOVE_DOUBLE);
  }

  void readAndHead() throws Exception {
    read("read", id, ABOVE_DOUBLE, EGO_NANOS);
    ApiResponse<Void> head = states.headStateWithHttpInfo(id, null, null, null, null);
    expectSame("head status", head.getStatusCode(), 200);
    expectSame("head ETag", etag(head), quoted(ABOVE_DOUBLE));
  }

  void compareAndSet() throws Exception {
    // The string form of each number, as a client holding the text would send it.
    PutStateRequest body =
        new PutStateRequest()
            .manifest(MANIFEST)
            .payload(PAYLOAD)
            .versionNumber(new VersionNumber(MAX_UINT64.toString()))
            .timestamp(new TimestampValue(Long.toString(GO_ZERO_TIME)))
            .shard(new Shard(SHARD.toString()));
    ApiResponse<StateWritten> response = states.putStateWithHttpInfo(id, body, quoted(ABOVE_DOUBLE), null, newKey());
    expectSame("compare-and-set status", response.getStatusCode(), 200);
    expectWritten("compare-and-set", response.getData(), MAX_UINT64, GO_ZERO_TIME);
    read("read after compare-and-set", id, MAX_UINT64, GO_ZERO_TIME);
  }

  void staleCompareAndSet() throws Exception {
    PutStateRequest body =
        new PutStateRequest()
            .manifest(MANIFEST)
            .payload(PAYLOAD)
            .versionNumber(new VersionNumber(BigInteger.ONE));
    Problem problem =
        expectProblem(
            "stale compare-and-set",
            412,
            () -> states.putStateWithHttpInfo(id, body, quoted(ABOVE_DOUBLE), null, newKey()));
    expect64("stale compare-and-set current_version", problem.getCurrentVersion(), MAX_UINT64);
  }

  void batchGet() throws Exception {
    List<State> found = new ArrayList<>();
    List<String> missing = new ArrayList<>();
    List<String> ask = List.of(id, missingId);
    while (!ask.isEmpty()) {
      BatchGetResponse answer = states.batchGetStates(new BatchGetRequest().persistenceIds(ask), null);
      found.addAll(answer.getStates());
      missing.addAll(answer.getMissing());
      ask = answer.getUnprocessed();
    }
    expectSame("batchGet number of states", found.size(), 1);
    State state = found.get(0);
    expectNumbers(
        "batchGet", state.getVersionNumber(), state.getTimestamp(), state.getShard(), MAX_UINT64, GO_ZERO_TIME);
    expectSame("batchGet missing", missing, List.of(missingId));
  }

  void transaction() throws Exception {
    TransactPut put =
        new TransactPut()
            .op(TransactPut.OpEnum.PUT)
            .persistenceId(otherId)
            .manifest(MANIFEST)
            .payload(PAYLOAD)
            .versionNumber(new VersionNumber(ABOVE_DOUBLE))
            .timestamp(new TimestampValue(EGO_NANOS))
            .shard(new Shard(SHARD))
            .ifNoneMatch(TransactPut.IfNoneMatchEnum.TRUE);
    TransactDelete delete =
        new TransactDelete()
            .op(TransactDelete.OpEnum.DELETE)
            .persistenceId(id)
            .ifMatch(new IfMatch(MAX_UINT64));
    TransactRequest request =
        new TransactRequest().operations(List.of(new OperationsInner(put), new OperationsInner(delete)));
    String key = newKey();
    List<TransactResult> results = states.transactStates(request, key).getResults();
    expectSame("transaction number of results", results.size(), 2);
    expectSame("transaction put persistence_id", results.get(0).getPersistenceId(), otherId);
    expect64("transaction put version_number", results.get(0).getVersionNumber(), ABOVE_DOUBLE);
    expectSame("transaction put etag", results.get(0).getEtag(), quoted(ABOVE_DOUBLE));
    expectSame("transaction delete persistence_id", results.get(1).getPersistenceId(), id);
    // Both conditions now fail; the retry finds its put stored with its key, so its delete is done too.
    List<TransactResult> retried = states.transactStates(request, key).getResults();
    expectSame("transaction retried with its key: number of results", retried.size(), results.size());
    for (int index = 0; index < retried.size(); index++) {
      expectSameFields("transaction retried with its key: result " + index, retried.get(index), results.get(index));
    }
    Problem problem =
        expectProblem("transaction sent again with a new key:", 412, () -> states.transactStates(request, newKey()));
    expectSame("transaction sent again with a new key: operation_index", problem.getOperationIndex(), 0);
    expect64("transaction sent again with a new key: current_version", problem.getCurrentVersion(), ABOVE_DOUBLE);
    read("read after transaction", otherId, ABOVE_DOUBLE, EGO_NANOS);
    expectAbsent("read of the state the transaction deleted", id);
  }

  void delete() throws Exception {
    expectProblem("stale delete", 412, () -> states.deleteStateWithHttpInfo(otherId, quoted(BigInteger.ONE), null));
    ApiResponse<Void> response = states.deleteStateWithHttpInfo(otherId, quoted(ABOVE_DOUBLE), null);
    expectSame("delete status", response.getStatusCode(), 204);
    expectAbsent("read after delete", otherId);
  }

  void listing() throws Exception {
    List<String> listedIds = List.of(prefix + "/listed 0", prefix + "/listed 1", prefix + "/listed 2");
    for (String listedId : listedIds) {
      create("listing: write of " + listedId, listedId, numbersBody(MAX_UINT64, EGO_NANOS, LISTED_SHARD), newKey());
    }
    List<ListedState> found = new ArrayList<>();
    int pages = 0;
    String pageToken = null;
    while (pages == 0 || pageToken != null) {
      pages++;
      StatePage page = states.listStates(LISTING_PAGE, pageToken, LISTED_SHARD.toString(), null);
      found.addAll(page.getStates());
      pageToken = page.getNextPageToken();
    }
    List<ListedState> ours = new ArrayList<>();
    for (ListedState state : found) { // the shard filter holds for every state, other programs' too
      expect64("listing " + state.getPersistenceId() + " shard", state.getShard(), LISTED_SHARD);
      if (state.getPersistenceId().startsWith(prefix + "/")) {
        ours.add(state);
      }
    }
    ours.sort(Comparator.comparing(ListedState::getPersistenceId));
    expectSame("listing ids", ours.stream().map(ListedState::getPersistenceId).toList(), listedIds);
    for (ListedState state : ours) {
      String what = "listing " + state.getPersistenceId();
      expectNumbers(
          what, state.getVersionNumber(), state.getTimestamp(), state.getShard(), MAX_UINT64, EGO_NANOS, LISTED_SHARD);
      expectSame(what + " manifest", state.getManifest(), MANIFEST);
    }
    if (pages < 2) {
      throw new Mismatch(
          "listing: one page of " + found.size() + " states, want more pages of at most " + LISTING_PAGE);
    }
  }

  void waitForChange() throws Exception {
    create("wait: first write", waitedId, numbersBody(ABOVE_DOUBLE, EGO_NANOS, SHARD), newKey());
    try {
      states.getStateWithHttpInfo(waitedId, null, 2, null, quoted(ABOVE_DOUBLE));
      throw new Mismatch("wait on a state nobody writes: want status 304, got a success");
    } catch (ApiException unchanged) {
      expectSame("wait on a state nobody writes: status", unchanged.getCode(), 304);
    }
    ApiResponse<StateWritten> written =
        states.putStateWithHttpInfo(
            waitedId, numbersBody(MAX_UINT64, EGO_NANOS, SHARD), quoted(ABOVE_DOUBLE), null, newKey());
    expectSame("wait: second write status", written.getStatusCode(), 200);
    ApiResponse<State> changed = states.getStateWithHttpInfo(waitedId, null, 2, null, quoted(ABOVE_DOUBLE));
    State state = changed.getData();
    expectNumbers(
        "wait with the old version",
        state.getVersionNumber(),
        state.getTimestamp(),
        state.getShard(),
        MAX_UINT64,
        EGO_NANOS);
    expectSame("wait with the old version: ETag", etag(changed), quoted(MAX_UINT64));
  }

  public static void main(String[] arguments) {
    if (arguments.length != 3) {
      System.err.println("usage: Conformance BASE_URL API_KEY ID_PREFIX");
      System.exit(2);
    }
    Conformance c = new Conformance(arguments[0], arguments[1], arguments[2]);
    List<NamedStep> steps =
        List.of(
            new NamedStep("write", c::write),
            new NamedStep("read", c::readAndHead),
            new NamedStep("compare-and-set", c::compareAndSet),
            new NamedStep("stale compare-and-set", c::staleCompareAndSet),
            new NamedStep("batchGet", c::batchGet),
            new NamedStep("transaction", c::transaction),
            new NamedStep("delete", c::delete),
            new NamedStep("listing", c::listing),
            new NamedStep("wait", c::waitForChange));
    for (NamedStep step : steps) {
      try {
        step.step().run();
      } catch (Exception failure) {
        // An ApiException's message carries the answer's status and body.
        System.err.printf("step %s failed: %s%n", step.name(), failure);
        System.exit(1);
      }
      System.out.println("ok " + step.name());
    }
  }
}

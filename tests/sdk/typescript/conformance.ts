// Drives a live service through a client generated from openapi/openapi.json (openapi-typescript types,
// openapi-fetch calls) and checks every 64-bit value exactly. Every write carries an Idempotency-Key of
// its own, and a write and a transaction are retried with theirs.
// Usage: node build/conformance.js BASE_URL API_KEY ID_PREFIX
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Problem = components["schemas"]["Problem"];
type Stored = components["schemas"]["StateWritten"];
type Listed = components["schemas"]["ListedState"];
type TransactBody = components["schemas"]["TransactRequest"];

const MAX_UINT64 = 18446744073709551615n;
const ABOVE_DOUBLE = 9007199254740993n; // 2^53 + 1: the first integer a JSON number in JavaScript rounds
const EGO_NANOS = 1764115200123456789n; // eGo >= 4.2 writes nanoseconds
const GO_ZERO_TIME = -62135596800n; // an eGo actor stopped before any command
const SHARD = 3;
// Only the listing step's states are in this shard: above 2^53, so a filter sent as a JSON number
// would name another.
const LISTED_SHARD = ABOVE_DOUBLE;
const LISTING_PAGE = 2; // a page smaller than the states listed, so that the walk follows next_page_token
const MANIFEST = "google.protobuf.StringValue";
const PAYLOAD = "CgJoaQ=="; // StringValue{value: "hi"}

const [baseUrl, apiKey, prefix] = process.argv.slice(2);
if (baseUrl === undefined || apiKey === undefined || prefix === undefined) {
  throw new Error("usage: conformance BASE_URL API_KEY ID_PREFIX");
}
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });
const id = `${prefix}/order 42|é:1`;
const otherId = `${prefix}/order 43`;
const missingId = `${prefix}/never written`;
const waitedId = `${prefix}/waited on`;

class Mismatch extends Error {}

function expectSame(what: string, got: unknown, want: unknown): void {
  if (got !== want) {
    throw new Mismatch(`${what}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
}

// Two answers, field by field, so that the first value that differs is named.
function expectSameFields(what: string, got: object | undefined, want: object | undefined): void {
  const gotFields: Record<string, unknown> = { ...got };
  const wantFields: Record<string, unknown> = { ...want };
  for (const name of new Set([...Object.keys(wantFields), ...Object.keys(gotFields)])) {
    expectSame(`${what} ${name}`, gotFields[name], wantFields[name]);
  }
}

// A new Idempotency-Key, a Structured Field string: one per write, the same on each of its retries.
function newKey(): string {
  return `"${randomUUID()}"`;
}

// A 64-bit field must arrive as a decimal string holding exactly the value.
function expect64(what: string, got: unknown, want: bigint): void {
  expectSame(`${what} (as a decimal string)`, got, want.toString());
}

function expectStored(
  what: string,
  got: Stored | Listed | undefined,
  version: bigint,
  timestamp: bigint,
  shard: bigint = BigInt(SHARD),
): void {
  if (got === undefined) {
    throw new Mismatch(`${what}: no state in the answer`);
  }
  expect64(`${what} version_number`, got.version_number, version);
  expect64(`${what} timestamp`, got.timestamp, timestamp);
  expect64(`${what} shard`, got.shard, shard);
  expectSame(`${what} manifest`, got.manifest, MANIFEST);
}

function expectProblem(what: string, error: Problem | undefined, status: number): Problem {
  if (error === undefined) {
    throw new Mismatch(`${what}: want a problem with status ${status}, got a success`);
  }
  expectSame(`${what} status`, error.status, status);
  return error;
}

async function read(what: string, persistenceId: string, version: bigint, timestamp: bigint): Promise<void> {
  const { data, error, response } = await client.GET("/states/{persistence_id}", {
    params: { path: { persistence_id: persistenceId } },
  });
  expectSame(`${what} status`, response.status, 200);
  expectSame(`${what} error`, error, undefined);
  expectStored(what, data, version, timestamp);
  expectSame(`${what} payload`, data?.payload, PAYLOAD);
  expectSame(`${what} persistence_id`, data?.persistence_id, persistenceId);
  expectSame(`${what} ETag`, response.headers.get("etag"), `"${version}"`);
}

async function expectAbsent(what: string, persistenceId: string): Promise<void> {
  const { error } = await client.GET("/states/{persistence_id}", {
    params: { path: { persistence_id: persistenceId } },
  });
  expectProblem(what, error, 404);
}

// Writes a state where none is (If-None-Match: *), its version and timestamp as decimal strings.
// A shard that a JSON number holds exactly is sent as one (requests take both forms), a larger one as
// a string.
function putWhereNone(persistenceId: string, version: bigint, shard: bigint, key: string) {
  return client.PUT("/states/{persistence_id}", {
    params: {
      path: { persistence_id: persistenceId },
      header: { "if-none-match": "*", "idempotency-key": key },
    },
    body: {
      manifest: MANIFEST,
      payload: PAYLOAD,
      version_number: version.toString(),
      timestamp: EGO_NANOS.toString(),
      shard: shard <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(shard) : shard.toString(),
    },
  });
}

async function create(what: string, persistenceId: string, version: bigint, shard: bigint, key = newKey()) {
  const answer = await putWhereNone(persistenceId, version, shard, key);
  expectSame(`${what} status`, answer.response.status, 201);
  return answer;
}

function transact(body: TransactBody, key: string) {
  return client.POST("/states:transact", { params: { header: { "idempotency-key": key } }, body });
}

const steps: [string, () => Promise<void>][] = [
  [
    "write",
    async () => {
      const key = newKey();
      const first = await create("write", id, ABOVE_DOUBLE, BigInt(SHARD), key);
      expectStored("write", first.data, ABOVE_DOUBLE, EGO_NANOS);
      expectSame("write ETag", first.response.headers.get("etag"), `"${ABOVE_DOUBLE}"`);
      // As after a lost answer: the retry's condition fails, but it finds its own write stored.
      const retried = await create("write retried with its key", id, ABOVE_DOUBLE, BigInt(SHARD), key);
      expectSame("write retried with its key: ETag", retried.response.headers.get("etag"), `"${ABOVE_DOUBLE}"`);
      expectSameFields("write retried with its key:", retried.data, first.data);
      const { error } = await putWhereNone(id, ABOVE_DOUBLE, BigInt(SHARD), newKey());
      const problem = expectProblem("write sent again with a new key:", error, 412);
      expect64("write sent again with a new key: current_version", problem.current_version, ABOVE_DOUBLE);
    },
  ],
  [
    "read",
    async () => {
      await read("read", id, ABOVE_DOUBLE, EGO_NANOS);
      const { response } = await client.HEAD("/states/{persistence_id}", {
        params: { path: { persistence_id: id } },
      });
      expectSame("head status", response.status, 200);
      expectSame("head ETag", response.headers.get("etag"), `"${ABOVE_DOUBLE}"`);
    },
  ],
  [
    "compare-and-set",
    async () => {
      const { data, response } = await client.PUT("/states/{persistence_id}", {
        params: {
          path: { persistence_id: id },
          header: { "if-match": `"${ABOVE_DOUBLE}"`, "idempotency-key": newKey() },
        },
        body: {
          manifest: MANIFEST,
          payload: PAYLOAD,
          version_number: MAX_UINT64.toString(),
          timestamp: GO_ZERO_TIME.toString(),
          shard: SHARD.toString(),
        },
      });
      expectSame("compare-and-set status", response.status, 200);
      expectStored("compare-and-set", data, MAX_UINT64, GO_ZERO_TIME);
      await read("read after compare-and-set", id, MAX_UINT64, GO_ZERO_TIME);
    },
  ],
  [
    "stale compare-and-set",
    async () => {
      const { error } = await client.PUT("/states/{persistence_id}", {
        params: {
          path: { persistence_id: id },
          header: { "if-match": `"${ABOVE_DOUBLE}"`, "idempotency-key": newKey() },
        },
        body: { manifest: MANIFEST, payload: PAYLOAD, version_number: "1", shard: SHARD },
      });
      const problem = expectProblem("stale compare-and-set", error, 412);
      expect64("stale compare-and-set current_version", problem.current_version, MAX_UINT64);
    },
  ],
  [
    "batchGet",
    async () => {
      const states: Stored[] = [];
      const missing: string[] = [];
      let ask = [id, missingId];
      while (ask.length > 0) {
        const { data } = await client.POST("/states:batchGet", { body: { persistence_ids: ask } });
        if (data === undefined) {
          throw new Mismatch("batchGet: no answer");
        }
        states.push(...data.states);
        missing.push(...data.missing);
        ask = data.unprocessed;
      }
      expectSame("batchGet number of states", states.length, 1);
      expectStored("batchGet", states[0], MAX_UINT64, GO_ZERO_TIME);
      expectSame("batchGet missing", missing.join(","), missingId);
    },
  ],
  [
    "transaction",
    async () => {
      const body: TransactBody = {
        operations: [
          {
            op: "put",
            persistence_id: otherId,
            manifest: MANIFEST,
            payload: PAYLOAD,
            version_number: ABOVE_DOUBLE.toString(),
            timestamp: EGO_NANOS.toString(),
            shard: SHARD,
            if_none_match: true,
          },
          { op: "delete", persistence_id: id, if_match: MAX_UINT64.toString() },
        ],
      };
      const key = newKey();
      const first = (await transact(body, key)).data?.results ?? [];
      const [put, deleted] = first;
      expectSame("transaction put persistence_id", put?.persistence_id, otherId);
      expect64("transaction put version_number", put?.version_number, ABOVE_DOUBLE);
      expectSame("transaction put etag", put?.etag, `"${ABOVE_DOUBLE}"`);
      expectSame("transaction delete persistence_id", deleted?.persistence_id, id);
      // Both conditions now fail; the retry finds its put stored with its key, so its delete is done too.
      const { data, error } = await transact(body, key);
      expectSame("transaction retried with its key: error", error, undefined);
      const retried = data?.results ?? [];
      expectSame("transaction retried with its key: number of results", retried.length, first.length);
      retried.forEach((result, index) => {
        expectSameFields(`transaction retried with its key: result ${index}`, result, first[index]);
      });
      const again = await transact(body, newKey());
      const problem = expectProblem("transaction sent again with a new key:", again.error, 412);
      expectSame("transaction sent again with a new key: operation_index", problem.operation_index, 0);
      expect64("transaction sent again with a new key: current_version", problem.current_version, ABOVE_DOUBLE);
      await read("read after transaction", otherId, ABOVE_DOUBLE, EGO_NANOS);
      await expectAbsent("read of the state the transaction deleted", id);
    },
  ],
  [
    "delete",
    async () => {
      const { error } = await client.DELETE("/states/{persistence_id}", {
        params: { path: { persistence_id: otherId }, header: { "if-match": '"1"' } },
      });
      expectProblem("stale delete", error, 412);
      const { response } = await client.DELETE("/states/{persistence_id}", {
        params: { path: { persistence_id: otherId }, header: { "if-match": `"${ABOVE_DOUBLE}"` } },
      });
      expectSame("delete status", response.status, 204);
      await expectAbsent("read after delete", otherId);
    },
  ],
  [
    "listing",
    async () => {
      const listedIds = [0, 1, 2].map((n) => `${prefix}/listed ${n}`);
      for (const listedId of listedIds) {
        await create(`listing: write of ${listedId}`, listedId, MAX_UINT64, LISTED_SHARD);
      }
      const found: Listed[] = [];
      let pages = 0;
      let pageToken: string | null = null;
      while (pages === 0 || pageToken !== null) {
        pages += 1;
        // The document types the filter as a string of decimal digits: exact, as a number would not be.
        const query: { limit: number; shard: string; page_token?: string } = {
          limit: LISTING_PAGE,
          shard: LISTED_SHARD.toString(),
        };
        if (pageToken !== null) {
          query.page_token = pageToken;
        }
        const { data, response } = await client.GET("/states", { params: { query } });
        if (data === undefined) {
          throw new Mismatch(`listing page ${pages}: status ${response.status}`);
        }
        found.push(...data.states);
        pageToken = data.next_page_token;
      }
      for (const state of found) {
        // the shard filter holds for every state, other programs' too
        expect64(`listing ${state.persistence_id} shard`, state.shard, LISTED_SHARD);
      }
      const ours = found
        .filter((state) => state.persistence_id.startsWith(`${prefix}/`))
        .sort((a, b) => (a.persistence_id < b.persistence_id ? -1 : 1));
      expectSame("listing ids", ours.map((state) => state.persistence_id).join(","), listedIds.join(","));
      for (const state of ours) {
        expectStored(`listing ${state.persistence_id}`, state, MAX_UINT64, EGO_NANOS, LISTED_SHARD);
      }
      if (pages < 2) {
        throw new Mismatch(`listing: one page of ${found.length} states, want more pages of at most ${LISTING_PAGE}`);
      }
    },
  ],
  [
    "wait",
    async () => {
      await create("wait: first write", waitedId, ABOVE_DOUBLE, BigInt(SHARD));
      const waitOnTheFirst = {
        params: {
          path: { persistence_id: waitedId },
          query: { wait: 2 },
          header: { "if-none-match": `"${ABOVE_DOUBLE}"` },
        },
      };
      const unchanged = await client.GET("/states/{persistence_id}", waitOnTheFirst);
      expectSame("wait on a state nobody writes: status", unchanged.response.status, 304);
      const written = await client.PUT("/states/{persistence_id}", {
        params: {
          path: { persistence_id: waitedId },
          header: { "if-match": `"${ABOVE_DOUBLE}"`, "idempotency-key": newKey() },
        },
        body: {
          manifest: MANIFEST,
          payload: PAYLOAD,
          version_number: MAX_UINT64.toString(),
          timestamp: EGO_NANOS.toString(),
          shard: SHARD,
        },
      });
      expectSame("wait: second write status", written.response.status, 200);
      const { data, response } = await client.GET("/states/{persistence_id}", waitOnTheFirst);
      expectSame("wait with the old version: status", response.status, 200);
      expectStored("wait with the old version", data, MAX_UINT64, EGO_NANOS);
      expectSame("wait with the old version: ETag", response.headers.get("etag"), `"${MAX_UINT64}"`);
    },
  ],
];

for (const [name, step] of steps) {
  try {
    await step();
  } catch (failure) {
    console.error(`step ${name} failed: ${failure instanceof Error ? failure.message : String(failure)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

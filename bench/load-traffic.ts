/**
 * What the load benchmark sends: the demo chain's own data, regenerated here
 * with the demo's options (the generator is deterministic, so its shoppers,
 * stores and products are the ones the server holds), replayed as live
 * traffic — fresh message and receipt ids, timestamps of now — beside the
 * reads marketers and analysts make.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SHOWROOMERS } from '../cli/demo.js';
import { DATASET_FILES, generateDataset } from '../fixtures/generate.js';
import type { PosReceipt } from '../schemas/pos.js';
import type { SegmentCall } from '../schemas/segment.js';
import type { SegmentCondition } from '../schemas/segment-definition.js';
import { segmentsForBench } from './segments.bench.js';

/** Calls in one tracking batch, as an SDK or a server-side collector flushes them. */
export const CALLS_PER_BATCH = 20;
/** Share of tracking batches whose anonymous ids are new: first visits and cleared cookies. */
export const NEW_VISITORS = 0.3;
/** About this many sessions and receipts are kept to replay; they are reused, with fresh ids. */
const KEPT = 1000;

/** One request as a worker sends it. */
export interface LoadRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** A route under load: its closed-loop workers and the next request one of them sends. */
export interface LoadRoute {
  readonly name: string;
  readonly workers: number;
  /** What one successful request carries, for a rate in those units (`events`, `receipts`). */
  readonly units?: { readonly name: string; readonly each: number };
  next(): LoadRequest;
}

/** The demo data the traffic is made of. */
export interface TrafficData {
  /** Calls of sampled sessions, in log order. */
  readonly calls: readonly SegmentCall[];
  readonly receipts: readonly PosReceipt[];
  /** `TYPE:VALUE` identifiers the chain's events carry (user ids and e-mails from identify calls, member cards from receipts). */
  readonly identifiers: readonly string[];
  readonly storeIds: readonly string[];
  readonly identifiedShare: number;
}

/** Regenerates the demo chain into `dir` (same options, same data) and keeps what the traffic needs. */
export async function prepareTraffic(
  dir: string,
  demo: { shoppers: number; stores: number; days: number; seed: number; start: string },
): Promise<TrafficData> {
  await generateDataset(demo, dir);
  const stride = Math.max(1, Math.floor(demo.shoppers / KEPT));
  const calls: SegmentCall[] = [];
  const identifiers = new Set<string>();
  let line = 0;
  for await (const text of lines(join(dir, DATASET_FILES.clickstream))) {
    const { batch } = JSON.parse(text) as { batch: SegmentCall[] };
    for (const call of batch) {
      if (call.type !== 'identify') continue;
      if (call.userId) identifiers.add(`user_id:${call.userId}`);
      const email = (call.traits as { email?: unknown } | undefined)?.email;
      if (typeof email === 'string') identifiers.add(`email:${email}`);
    }
    if (line++ % stride === 0) calls.push(...batch);
  }
  const receipts: PosReceipt[] = [];
  line = 0;
  for await (const text of lines(join(dir, DATASET_FILES.receipts))) {
    const receipt = JSON.parse(text) as PosReceipt;
    if (receipt.memberId) identifiers.add(`member_id:${receipt.memberId}`);
    if (line++ % stride === 0) receipts.push(receipt);
  }
  const storeIds = (await readFile(join(dir, DATASET_FILES.stores), 'utf8'))
    .trimEnd()
    .split('\n')
    .map((text) => (JSON.parse(text) as { storeId: string }).storeId);
  return {
    calls,
    receipts,
    identifiers: [...identifiers],
    storeIds,
    identifiedShare: calls.filter((call) => call.userId).length / calls.length,
  };
}

export interface TrafficKeys {
  readonly writeKey: string;
  readonly marketerKey: string;
  readonly analystKey: string;
}

/** How many closed-loop workers each route has: a handful of SDK collectors and tills, a few people at dashboards. */
export const WORKERS = {
  tracking: 4,
  receipts: 2,
  previews: 2,
  profiles: 2,
  lookups: 2,
  recommendations: 2,
  sql: 2,
} as const;

/** The mixed traffic: ingest from SDKs and tills, reads from marketers and analysts. */
export function mixedRoutes(
  data: TrafficData,
  keys: TrafficKeys,
  profileIds: readonly string[],
): LoadRoute[] {
  const write = {
    'content-type': 'application/json',
    authorization: `Basic ${Buffer.from(`${keys.writeKey}:`).toString('base64')}`,
  };
  const marketer = { authorization: `Bearer ${keys.marketerKey}` };
  const marketerJson = { ...marketer, 'content-type': 'application/json' };
  const analystJson = {
    authorization: `Bearer ${keys.analystKey}`,
    'content-type': 'application/json',
  };
  const nextCall = cycle(data.calls);
  const nextReceipt = cycle(data.receipts);
  const nextProfile = cycle(shuffled(profileIds));
  const nextIdentifier = cycle(shuffled(data.identifiers));
  const nextStore = cycle(data.storeIds);
  const nextCondition = cycle(Object.values(segmentConditions(data.storeIds[0] as string)));
  const nextQuery = cycle(analystQueries(data.storeIds));
  let recommendation = 0;
  return [
    {
      name: 'POST /v1/batch',
      workers: WORKERS.tracking,
      units: { name: 'events', each: CALLS_PER_BATCH },
      next: () => ({
        method: 'POST',
        path: '/v1/batch',
        headers: write,
        body: trackingBatch(Array.from({ length: CALLS_PER_BATCH }, nextCall)),
      }),
    },
    {
      name: 'POST /v1/pos/receipts',
      workers: WORKERS.receipts,
      units: { name: 'receipts', each: 1 },
      next: () => ({
        method: 'POST',
        path: '/v1/pos/receipts',
        headers: write,
        body: JSON.stringify({
          ...nextReceipt(),
          receiptId: `R-load-${randomUUID()}`,
          occurredAt: new Date().toISOString(),
        }),
      }),
    },
    {
      name: 'POST /v1/segments/preview',
      workers: WORKERS.previews,
      next: () => ({
        method: 'POST',
        path: '/v1/segments/preview',
        headers: marketerJson,
        body: JSON.stringify({ condition: nextCondition() }),
      }),
    },
    {
      name: 'GET /v1/profiles/{id}',
      workers: WORKERS.profiles,
      next: () => ({ method: 'GET', path: `/v1/profiles/${nextProfile()}`, headers: marketer }),
    },
    {
      name: 'GET /v1/profiles?identifier=',
      workers: WORKERS.lookups,
      next: () => ({
        method: 'GET',
        path: `/v1/profiles?identifier=${encodeURIComponent(nextIdentifier())}`,
        headers: marketer,
      }),
    },
    {
      name: 'GET /v1/profiles/{id}/recommendations',
      workers: WORKERS.recommendations,
      next: () => {
        // Half online, a quarter at a named store, a quarter at the shopper's preferred store.
        const query = [
          'limit=10',
          'limit=10',
          `limit=10&store=${nextStore()}`,
          'limit=10&context=in_store',
        ][recommendation++ % 4];
        return {
          method: 'GET',
          path: `/v1/profiles/${nextProfile()}/recommendations?${query}`,
          headers: marketer,
        };
      },
    },
    {
      name: 'POST /v1/sql',
      workers: WORKERS.sql,
      next: () => ({
        method: 'POST',
        path: '/v1/sql',
        headers: analystJson,
        body: JSON.stringify(nextQuery()),
      }),
    },
  ];
}

/**
 * A batch of replayed calls as a collector sends it now: fresh message ids,
 * timestamps of the last few seconds, `sentAt` now; for NEW_VISITORS of the
 * batches, new anonymous ids (an identified call then links a new device).
 */
function trackingBatch(calls: readonly SegmentCall[]): string {
  const now = Date.now();
  const renamed = new Map<string, string>();
  const newVisitors = Math.random() < NEW_VISITORS;
  const anonymous = (id: string | undefined) => {
    if (!id || !newVisitors) return id;
    const fresh = renamed.get(id) ?? randomUUID();
    renamed.set(id, fresh);
    return fresh;
  };
  const batch = calls.map((call, i) => {
    const { sentAt: _sentAt, ...rest } = call;
    const anonymousId = anonymous(call.anonymousId ?? undefined);
    return {
      ...rest,
      ...(anonymousId ? { anonymousId } : {}),
      messageId: randomUUID(),
      timestamp: new Date(now - (calls.length - i) * 250).toISOString(),
    };
  });
  return JSON.stringify({ batch, sentAt: new Date(now).toISOString() });
}

/** Segments a marketer previews while building one: the demo's showroomers and four of the segments bench's. */
export function segmentConditions(store: string): Record<string, SegmentCondition> {
  const bench = segmentsForBench(store, '');
  const picked = [
    'viewed online, last 30 days',
    'bought in store 2+ times, last 90 days',
    'email consent and a store visit, last 30 days',
    `regulars of ${store} who never browse online`,
  ].map((name) => {
    const condition = bench[name];
    if (!condition) throw new Error(`the segments bench has no segment named ${name}`);
    return [name, condition] as const;
  });
  return { showroomers: SHOWROOMERS, ...Object.fromEntries(picked) };
}

/** Small queries an analyst runs from a notebook, values as params. */
export function analystQueries(
  storeIds: readonly string[],
): { query: string; params?: Record<string, string>; format: 'json' }[] {
  const since = () => new Date(Date.now() - 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
  const queries = [
    {
      query:
        'SELECT channel, count() AS orders, sum(revenue) AS revenue FROM orders GROUP BY channel ORDER BY channel',
    },
    {
      query:
        'SELECT channel, count() AS events FROM events WHERE occurred_at >= {since:DateTime64(3)} GROUP BY channel ORDER BY channel',
      params: { since: since() },
    },
    {
      query:
        'SELECT sku, sum(quantity) AS units FROM order_lines WHERE store_id = {store:String} GROUP BY sku ORDER BY units DESC, sku LIMIT 10',
      params: { store: storeIds[1] ?? (storeIds[0] as string) },
    },
    {
      query:
        'SELECT purpose, countIf(granted) AS granted, count() AS profiles FROM consents GROUP BY purpose ORDER BY purpose',
    },
    {
      query:
        "SELECT store_id, count() AS receipts, sum(revenue) AS revenue FROM orders WHERE channel = 'offline' GROUP BY store_id ORDER BY revenue DESC",
    },
  ];
  return queries.map((query) => ({ ...query, format: 'json' as const }));
}

/** A function that hands out the items in turn, round and round. */
function cycle<T>(items: readonly T[]): () => T {
  if (items.length === 0) throw new Error('the load benchmark has nothing to send for a route');
  let next = 0;
  return () => items[next++ % items.length] as T;
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

async function* lines(file: string): AsyncGenerator<string> {
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity }))
    if (line.length > 0) yield line;
}

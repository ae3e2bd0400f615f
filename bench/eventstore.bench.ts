/**
 * `npm run bench -- eventstore`: append and read rates of the embedded event
 * store against a bare lmdb-js put/get loop over the same events, in the same
 * run, with the same batch sizes, concurrency and durability (each batch is
 * one synced commit).
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Packr } from 'msgpackr';
import type { EventData, EventStore } from '../eventstore/event-store.js';
import { openLmdbEventStore } from '../eventstore/event-store.lmdb.js';
import { type BenchOptions, type BenchRow, formatBenchReport, median } from './report.js';

interface AppendCase {
  readonly batch: number;
  readonly inFlight: number;
  readonly events: number;
}

// Batch-1 appends only make sense concurrently (ingest serves many requests at
// once); group commit folds them into shared commits.
const APPEND_CASES: readonly AppendCase[] = [
  { batch: 1, inFlight: 64, events: 20_000 },
  { batch: 100, inFlight: 4, events: 100_000 },
  { batch: 1000, inFlight: 4, events: 200_000 },
];
const ROUNDS = 3;

/** Runs the benchmark and returns the printed report; `scale` shrinks the event counts for a quick run. */
export async function runEventStoreBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const rows: BenchRow[] = [];
  const scaled = (count: number) => Math.max(10, Math.round(count * scale));
  const sample = clickstreamEvents(1)[0] as EventData;
  // Warm up both paths (JIT, page cache) so the first measured round is not the cold one.
  const warmUp = clickstreamEvents(scaled(20_000));
  const warmUpCase = { batch: 100, inFlight: 4, events: warmUp.length };
  await inTempDir((dir) => rawAppendRate(dir, warmUp, warmUpCase));
  await inTempDir((dir) => ourAppendRate(dir, warmUp, warmUpCase));
  const eventBytes = Buffer.byteLength(JSON.stringify(sample));
  for (const testCase of APPEND_CASES) {
    const events = clickstreamEvents(scaled(testCase.events));
    const ours: number[] = [];
    const raw: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      raw.push(await inTempDir((dir) => rawAppendRate(dir, events, testCase)));
      ours.push(await inTempDir((dir) => ourAppendRate(dir, events, testCase)));
    }
    rows.push({
      name: `append, batch ${testCase.batch} (${testCase.inFlight} in flight)`,
      unit: 'events/s',
      ours: median(ours),
      raw: median(raw),
    });
  }
  const readEvents = clickstreamEvents(scaled(200_000));
  const reads = { ours: [] as number[], raw: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    reads.raw.push(await inTempDir((dir) => rawReadRate(dir, readEvents)));
    reads.ours.push(await inTempDir((dir) => ourReadRate(dir, readEvents)));
  }
  rows.push({
    name: 'readAll, whole log',
    unit: 'events/s',
    ours: median(reads.ours),
    raw: median(reads.raw),
  });

  return [
    formatBenchReport(
      `eventstore: LMDB adapter vs bare lmdb-js, ${eventBytes}-byte clickstream events, median of ${ROUNDS}`,
      rows,
      [{ row: 'append, batch 1000 (4 in flight)', minRatio: 0.6, minOurs: 150_000 }],
    ),
    'raw = each event packed with msgpackr and put under a sequence key in one LMDB database, one synced',
    'commit per batch; ours adds validation, stream and idempotency indexes, positions, and the flush wait.',
  ].join('\n');
}

async function ourAppendRate(
  dir: string,
  events: readonly EventData[],
  testCase: AppendCase,
): Promise<number> {
  const store = await openLmdbEventStore({ path: dir });
  try {
    const batches = chunk(events, testCase.batch);
    // Streams per person, as ingest will write them: a few hundred distinct ones.
    return await timed(events.length, () =>
      runWithConcurrency(batches, testCase.inFlight, (batch, i) =>
        store.append(`anon-${i % 500}`, batch),
      ),
    );
  } finally {
    await store.close();
  }
}

async function rawAppendRate(
  dir: string,
  events: readonly EventData[],
  testCase: AppendCase,
): Promise<number> {
  const root = open({ path: dir, compression: false });
  const db = root.openDB({ name: 'raw', encoding: 'binary' });
  const packr = new Packr({ useRecords: false });
  let key = 0;
  try {
    const batches = chunk(events, testCase.batch);
    return await timed(events.length, () =>
      runWithConcurrency(batches, testCase.inFlight, async (batch) => {
        const values = batch.map((event) => packr.pack(event));
        await root.transaction(() => {
          for (const value of values) db.put(++key, value);
        });
        await root.flushed;
      }),
    );
  } finally {
    await root.close();
  }
}

async function ourReadRate(dir: string, events: readonly EventData[]): Promise<number> {
  const store = await openLmdbEventStore({ path: dir });
  try {
    await fill(store, events);
    return await timed(events.length, async () => {
      let count = 0;
      for await (const _ of store.readAll()) count++;
      if (count !== events.length)
        throw new Error(`readAll returned ${count} of ${events.length} events`);
    });
  } finally {
    await store.close();
  }
}

/** Reads decode in lmdb-js's reused buffer, as the log does (its record codec is the database's encoder). */
async function rawReadRate(dir: string, events: readonly EventData[]): Promise<number> {
  const root = open({ path: dir, compression: false });
  const packr = new Packr({ useRecords: false, copyBuffers: true });
  const encoder = {
    encode: (event: EventData) => packr.pack(event),
    decode: (bytes: Uint8Array, end?: number) => packr.unpack(bytes, end) as EventData,
  };
  // lmdb-js takes `encoder` as an option; its types declare it only on the database.
  const options = { name: 'raw', encoder };
  const db = root.openDB<EventData, number>(options);
  try {
    await root.transaction(() => {
      events.forEach((event, i) => {
        db.put(i + 1, event);
      });
    });
    return await timed(events.length, async () => {
      let count = 0;
      for (const { value } of db.getRange()) if (value) count++;
      if (count !== events.length)
        throw new Error(`raw read returned ${count} of ${events.length} events`);
    });
  } finally {
    await root.close();
  }
}

async function fill(store: EventStore, events: readonly EventData[]): Promise<void> {
  await runWithConcurrency(chunk(events, 1000), 4, (batch, i) =>
    store.append(`anon-${i % 500}`, batch),
  );
}

/**
 * Clickstream-shaped envelopes (~400 bytes as JSON): identifiers are keyed
 * hashes, the page and product fields are what a Segment `track` carries.
 */
export function clickstreamEvents(count: number): EventData[] {
  const secret = 'bench-secret';
  const now = Date.parse('2026-11-01T10:00:00Z');
  return Array.from({ length: count }, (_, i) => {
    const anonymousId = createHmac('sha256', secret)
      .update(`anon-${i % 5000}`)
      .digest('base64url');
    const at = new Date(now + i * 37).toISOString();
    return {
      id: randomUUID(),
      type: 'track',
      data: {
        v: 1,
        source: { kind: 'web', id: 'src_web_shop' },
        occurredAt: at,
        receivedAt: at,
        identifiers: [{ type: 'anonymous_id', hash: anonymousId }],
        data: {
          event: 'Product Viewed',
          properties: {
            product_id: `SKU-${(i * 7919) % 20_000}`,
            category: 'shoes',
            brand: 'Northwind',
            price: 89.9,
          },
          page: { path: `/p/sku-${i % 20_000}` },
        },
      },
    };
  });
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

async function runWithConcurrency<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function timed(events: number, run: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await run();
  return events / ((performance.now() - started) / 1000);
}

async function inTempDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-'));
  try {
    return await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

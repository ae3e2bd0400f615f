import type { Readable } from 'node:stream';
import type { Runtime } from '../cli/runtime.js';
import { openIngest } from '../cli/stores.js';
import type { CompiledSegment } from '../query-api/segments/segment-compiler.js';
import { compileSegment } from '../query-api/segments/segment-compiler.js';
import { type ExportDeps, exportMembers } from '../query-api/segments/segment-export.js';
import { previewSegment } from '../query-api/segments/segment-preview.js';
import type { SegmentCondition } from '../schemas/segment-definition.js';
import { selectRows } from '../warehouse/select.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { timed, withProjectedFixtures } from './fixture-log.js';
import {
  type BenchOptions,
  formatBenchReport,
  formatRate,
  fromEnv,
  median,
  percentile,
} from './report.js';
import { copyWarehouse } from './warehouse-copy.js';

const SHOPPERS = 1_000_000;
const SEED = 7;
const RUNS = 5;
const P50_TARGET_MS = 300;
const P95_TARGET_MS = 1000;
const EXPORT_TARGET_ROWS = 200_000;
const PREVIEW = 'segment preview p50 (10 segments)';
const PREVIEW_P95 = 'segment preview p95 (10 segments)';
const EXPORT = 'export of consenting members (CSV)';

/**
 * `TANDEM_BENCH_SEGMENT_COPIES=N` measures on N copies of the projected
 * fixtures, made in SQL (`warehouse-copy.ts`): `--scale 0.02` with 50 copies
 * holds about the events and profiles of 1M shoppers, set up in minutes
 * rather than the hours their ingest takes here.
 */
export async function runSegmentsBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const shoppers = Math.max(500, Math.round(SHOPPERS * scale));
  const copies = fromEnv('TANDEM_BENCH_SEGMENT_COPIES') ?? 1;
  return withProjectedFixtures(
    'segments',
    { shoppers, seed: SEED },
    async (runtime, warehouse, _fixtures, setup) => {
      const copied = copies > 1 ? await timed(() => copyWarehouse(warehouse, copies)) : undefined;
      const copiedSetup = copied
        ? `; then ${copies} copies of every person's rows made in SQL (TANDEM_BENCH_SEGMENT_COPIES), ${formatRate(copied.value)} events, in ${copied.seconds.toFixed(0)} s`
        : '';
      return [await measure(runtime, warehouse), `${setup}${copiedSetup}`].join('\n');
    },
  );
}

/** Ten segments a marketer would build, over the fixtures' own stores and categories. */
export function segmentsForBench(
  store: string,
  category: string,
): Record<string, SegmentCondition> {
  const viewedOnline = { eventName: 'Product Viewed', channel: 'online' } as const;
  const boughtInStore = { eventName: 'Order Completed', channel: 'offline' } as const;
  return {
    'viewed online, last 30 days': {
      type: 'event',
      filter: viewedOnline,
      window: { lastDays: 30 },
    },
    'bought in store 2+ times, last 90 days': {
      type: 'event',
      filter: boughtInStore,
      count: { op: 'at_least', n: 2 },
      window: { lastDays: 90 },
    },
    'showroomers: viewed online, bought same category in store within 7 days': {
      type: 'sequence',
      first: viewedOnline,
      // biome-ignore lint/suspicious/noThenProperty: the sequence's second step, a plain object
      then: boughtInStore,
      withinDays: 7,
      sameCategory: true,
    },
    'did not order online, last 90 days': {
      type: 'event',
      filter: { eventName: 'Order Completed', channel: 'online' },
      count: { op: 'exactly', n: 0 },
      window: { lastDays: 90 },
    },
    'revenue over 200, last 90 days': {
      type: 'purchase',
      metric: 'revenue',
      op: '>',
      value: 200,
      window: { lastDays: 90 },
    },
    'average store basket over 80': {
      type: 'purchase',
      metric: 'average_basket',
      op: '>',
      value: 80,
      channel: 'offline',
    },
    'email consent and a store visit, last 30 days': {
      type: 'and',
      conditions: [
        { type: 'consent', purpose: 'marketing_email', granted: true },
        { type: 'event', filter: boughtInStore, window: { lastDays: 30 } },
      ],
    },
    [`category ${category} viewed 3+ times, last 60 days`]: {
      type: 'event',
      filter: { channel: 'online', category },
      count: { op: 'at_least', n: 3 },
      window: { lastDays: 60 },
    },
    [`regulars of ${store} who never browse online`]: {
      type: 'and',
      conditions: [
        { type: 'event', filter: { storeId: store }, count: { op: 'at_least', n: 2 } },
        { type: 'not', condition: { type: 'event', filter: { channel: 'online' } } },
      ],
    },
    'gold members or big spenders, nested': {
      type: 'or',
      conditions: [
        { type: 'trait', trait: 'member_tier', op: '=', value: 'gold' },
        {
          type: 'and',
          conditions: [
            { type: 'purchase', metric: 'orders', op: '>=', value: 3 },
            {
              type: 'not',
              condition: { type: 'consent', purpose: 'marketing_sms', granted: false },
            },
          ],
        },
      ],
    },
  };
}

async function measure(runtime: Runtime, warehouse: Warehouse): Promise<string> {
  const db = warehouse.database;
  const [anchor] = await selectRows<{ now: string; store: string; category: string }>(
    warehouse.client,
    `SELECT toString(max(occurred_at)) AS now,
            topKIf(1)(store_id, store_id != '')[1] AS store,
            (SELECT topK(1)(c)[1] FROM (SELECT arrayJoin(categories) AS c FROM ${db}.events)) AS category
     FROM ${db}.events`,
  );
  const now = new Date(`${String(anchor?.now).replace(' ', 'T')}Z`);
  const conditions = segmentsForBench(String(anchor?.store), String(anchor?.category));

  const latencies: number[] = [];
  const sizes: string[] = [];
  for (const [name, condition] of Object.entries(conditions)) {
    const options = { database: db, now };
    await previewSegment(warehouse.client, condition, options); // warm-up
    const runs: number[] = [];
    let size = 0;
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now();
      size = (await previewSegment(warehouse.client, condition, options)).size;
      runs.push(performance.now() - started);
    }
    latencies.push(...runs);
    sizes.push(`  ${name}: ${formatRate(size)} members, p50 ${median(runs).toFixed(0)} ms`);
  }
  const rawScan = await repeat(RUNS, () =>
    warehouse.client
      .query({
        query: `SELECT count() FROM (SELECT identifier_hash, count() FROM ${db}.events GROUP BY identifier_hash)`,
        format: 'JSONEachRow',
      })
      .then((result) => result.json()),
  );

  const everyone: SegmentCondition = {
    type: 'or',
    conditions: [
      { type: 'consent', purpose: 'analytics', granted: true },
      { type: 'event', filter: {} },
    ],
  };
  const compiled = compileSegment(everyone, { database: db, now });
  const ingest = await openIngest(runtime);
  const ours = await timed(() =>
    drain(
      exportCsv({ warehouse, eventStore: runtime.eventStore, keyStore: ingest.keyStore }, compiled),
    ),
  ).finally(() => ingest.close());
  const raw = await timed(async () => {
    const result = await warehouse.client.exec({
      query: `SELECT profile_id FROM ${db}.profiles FORMAT CSVWithNames`,
    });
    return drain(Promise.resolve(result.stream as Readable));
  });

  const p95 = percentile(latencies, 0.95);
  const p50 = median(latencies);
  const scanMs = median(rawScan);
  return [
    formatBenchReport(
      `segments: ${RUNS} previews of each of 10 segments, then an export`,
      [
        // Latencies as rates (previews per second), so the ratio reads like the others: higher is better.
        { name: PREVIEW, unit: 'previews/s', ours: 1000 / p50, raw: 1000 / scanMs },
        { name: PREVIEW_P95, unit: 'previews/s', ours: 1000 / p95, raw: 1000 / scanMs },
        {
          name: EXPORT,
          unit: 'rows/s',
          ours: ours.value / ours.seconds,
          raw: raw.value / raw.seconds,
        },
      ],
      [{ row: EXPORT, minOurs: EXPORT_TARGET_ROWS }],
    ),
    `preview p50 ${p50.toFixed(0)} ms (target < ${P50_TARGET_MS} ms: ${p50 < P50_TARGET_MS ? 'met' : 'NOT met'}), p95 ${p95.toFixed(0)} ms (target < ${P95_TARGET_MS} ms: ${p95 < P95_TARGET_MS ? 'met' : 'NOT met'}); raw = a GROUP BY of every event by identifier, p50 ${scanMs.toFixed(0)} ms`,
    `export: ${formatRate(ours.value)} consenting members in ${ours.seconds.toFixed(2)} s; raw = every profile id as CSV (${formatRate(raw.value)} rows)`,
    ...sizes,
  ].join('\n');
}

async function exportCsv(deps: ExportDeps, compiled: CompiledSegment): Promise<Readable> {
  const exported = await exportMembers(deps, compiled, { purpose: 'analytics', format: 'csv' });
  return exported.stream;
}

/** Reads a stream to its end; returns its lines, less the CSV header. */
async function drain(stream: Promise<Readable>): Promise<number> {
  let lines = 0;
  for await (const chunk of await stream)
    for (const byte of chunk as Buffer) if (byte === 0x0a) lines++;
  return Math.max(0, lines - 1);
}

async function repeat(times: number, run: () => Promise<unknown>): Promise<number[]> {
  await run();
  const durations: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    await run();
    durations.push(performance.now() - started);
  }
  return durations;
}

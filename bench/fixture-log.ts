/**
 * A fixture chain's log for benchmarks: the generator's catalog and stores,
 * then its clickstream and receipts, sent through the real ingest pipeline
 * (in process, no HTTP) into the configured log, several requests in flight.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunks, lines, pump } from '../cli/file-lines.js';
import { openRuntime, type Runtime } from '../cli/runtime.js';
import { openConfiguredWarehouse, openIngest } from '../cli/stores.js';
import { DATASET_FILES, generateDataset } from '../fixtures/generate.js';
import { openResolver } from '../identity/resolver.js';
import type { CatalogEntries } from '../ingest/ingestor.js';
import { openProjector } from '../projections/projector.js';
import { Product, Store } from '../schemas/catalog.js';
import { PosReceipt } from '../schemas/pos.js';
import { SegmentBatch } from '../schemas/segment.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { formatRate } from './report.js';

export const IN_FLIGHT = 16;
const RECEIPTS_PER_CALL = 500;
/** As many entries as `/v1/catalog/…` takes in one request. */
const CATALOG_PER_CALL = 1000;

/**
 * The fixture files through the ingestor, as the HTTP routes would call it:
 * the catalog and stores first, then the clickstream and receipts with
 * several requests in flight (their rate leaves the catalog out).
 */
export async function ingestFixtures(runtime: Runtime, fixtures: string) {
  const ingest = await openIngest(runtime);
  let catalog = 0;
  let calls = 0;
  let receipts = 0;
  let started = performance.now();
  try {
    const upsert = async (entries: CatalogEntries) => {
      catalog += (await ingest.ingestor.catalog(entries, Date.now(), 'bench-catalog')).accepted;
    };
    const file = (name: keyof typeof DATASET_FILES) =>
      chunks(lines(join(fixtures, DATASET_FILES[name])), CATALOG_PER_CALL);
    for await (const batch of file('catalog'))
      await upsert({ products: batch.map((line) => Product.parse(JSON.parse(line))) });
    for await (const batch of file('stores'))
      await upsert({ stores: batch.map((line) => Store.parse(JSON.parse(line))) });
    started = performance.now();
    await pump(lines(join(fixtures, DATASET_FILES.clickstream)), IN_FLIGHT, async (line) => {
      const body = SegmentBatch.parse(JSON.parse(line));
      // One source per request, as the route decides it from the first call.
      const kind = body.batch[0]?.context?.app === undefined ? 'web' : 'app';
      // Received when sent: what a live server would have seen, so skew correction keeps the fixture's times.
      const receivedAt = Date.parse(body.sentAt ?? (body.batch.at(-1)?.timestamp as string));
      const result = await ingest.ingestor.tracking(body, receivedAt, { kind, id: 'bench' });
      // Added after the await: `calls += await …` would add to a stale total under concurrency.
      calls += result.accepted;
    });
    await pump(
      chunks(lines(join(fixtures, DATASET_FILES.receipts)), RECEIPTS_PER_CALL),
      IN_FLIGHT,
      async (batch) => {
        const parsed = batch.map((line) => PosReceipt.parse(JSON.parse(line)));
        const receivedAt = Date.parse((parsed.at(-1) as PosReceipt).occurredAt);
        const result = await ingest.ingestor.receipts(parsed, receivedAt, 'bench-pos');
        receipts += result.accepted;
      },
    );
  } finally {
    await ingest.close();
  }
  return {
    catalog,
    calls,
    receipts,
    rate: (calls + receipts) / ((performance.now() - started) / 1000),
  };
}

/** Runs `run` and says how long it took. */
export async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await run();
  return { value, seconds: (performance.now() - started) / 1000 };
}

/** What `withResolvedFixtures` did before handing over: events ingested, and how long ingest and identity took. */
export interface FixtureLog {
  readonly ingested: number;
  readonly seconds: number;
}

/**
 * A fixture chain of `shoppers` (seed `seed`) generated into a temp
 * directory, sent through ingest into an embedded log, resolved into
 * profiles; `run` gets the runtime; everything is removed afterwards.
 */
export async function withResolvedFixtures<T>(
  name: string,
  dataset: { readonly shoppers: number; readonly seed: number },
  run: (runtime: Runtime, log: FixtureLog, fixtures: string) => Promise<T>,
  /** Configuration for the run on top of the environment (e.g. a higher API rate limit). */
  env: Record<string, string> = {},
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `tandem-bench-${name}-`));
  try {
    const fixtures = join(dir, 'fixtures');
    await generateDataset(dataset, fixtures);
    const runtime = await openRuntime({
      ...process.env,
      TANDEM_DATA_DIR: join(dir, 'data'),
      TANDEM_EVENTSTORE_URL: '',
      TANDEM_CLICKHOUSE_URL: '',
      TANDEM_LOG_LEVEL: process.env.TANDEM_LOG_LEVEL ?? 'warn',
      ...env,
    });
    try {
      const setup = await timed(async () => {
        const ingested = await ingestFixtures(runtime, fixtures);
        await (
          await openResolver({ eventStore: runtime.eventStore, rules: runtime.identityRules })
        ).catchUp();
        return ingested.calls + ingested.receipts;
      });
      return await run(runtime, { ingested: setup.value, seconds: setup.seconds }, fixtures);
    } finally {
      await runtime.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `withResolvedFixtures`, then projected into the configured warehouse:
 * `run` gets the runtime, the warehouse, the fixtures' directory and a line
 * saying what the (untimed) set-up did and how long it took.
 */
export async function withProjectedFixtures<T>(
  name: string,
  dataset: { readonly shoppers: number; readonly seed: number },
  run: (runtime: Runtime, warehouse: Warehouse, fixtures: string, setup: string) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  return withResolvedFixtures(
    name,
    dataset,
    async (runtime, log, fixtures) => {
      const warehouse = await openConfiguredWarehouse(runtime);
      try {
        const projection = await timed(async () =>
          (
            await openProjector({
              eventStore: runtime.eventStore,
              warehouse,
              priority: runtime.identityRules.priority,
            })
          ).catchUp(),
        );
        const setup = `set-up (untimed above): ${formatRate(dataset.shoppers)} shoppers, ${formatRate(log.ingested)} events ingested and resolved in ${log.seconds.toFixed(0)} s, ${formatRate(projection.value.events)} log events projected in ${projection.seconds.toFixed(0)} s`;
        return await run(runtime, warehouse, fixtures, setup);
      } finally {
        await warehouse.close();
      }
    },
    env,
  );
}

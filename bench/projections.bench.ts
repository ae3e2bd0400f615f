/**
 * `npm run bench -- projections`: the warehouse projector over a fixture
 * chain's log, against chDB's own insert rate of the same rows.
 *
 * 1. Throughput: the fixtures go through the real ingest pipeline into the
 *    LMDB log and the identity resolver appends its decisions; a fresh
 *    projector then catches up over the whole log into chDB (reading,
 *    mapping, inserting, checkpointing). Raw: the very rows it wrote,
 *    prepared in memory beforehand, encoded and inserted into empty tables
 *    of another database in batches of the same size, one after another —
 *    the rate chDB takes them at through the same insert.
 * 2. Lag under load: while the projector follows the log, another process
 *    appends copies of the fixture events (new ids) at a steady 20k
 *    events/s; the lag (age of the oldest event not yet written) is sampled
 *    every 100 ms.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../cli/runtime.js';
import { openConfiguredWarehouse } from '../cli/stores.js';
import { openProjector } from '../projections/projector.js';
import { projectEvent, type Row } from '../projections/rows.js';
import { migrate } from '../warehouse/migrations.js';
import { columnNames, projectedTable } from '../warehouse/tables.js';
import { EncodedRows, openWarehouse, type Warehouse } from '../warehouse/warehouse.js';
import { timed, withResolvedFixtures } from './fixture-log.js';
import { type BenchOptions, formatBenchReport, formatRate, median } from './report.js';

const SHOPPERS = 20_000;
const SEED = 5;
const BATCH_EVENTS = 20_000;
const LOAD_EVENTS_PER_SECOND = 20_000;
const LOAD_SECONDS = 20;
const MIN_EVENTS_PER_SECOND = 100_000;
const MIN_RATIO = 0.4;
const MAX_LAG_SECONDS = 2;
const THROUGHPUT = 'log → ClickHouse (projector catch-up)';

export async function runProjectionsBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const shoppers = Math.max(200, Math.round(SHOPPERS * scale));
  return withResolvedFixtures('projections', { shoppers, seed: SEED }, async (runtime, log) => {
    const warehouse = await openConfiguredWarehouse(runtime);
    try {
      return formatReport(shoppers, log.ingested, await measure(runtime, warehouse));
    } finally {
      await warehouse.close();
    }
  });
}

interface Run {
  readonly events: number;
  readonly rows: number;
  readonly oursRate: number;
  readonly rawRate: number;
  readonly lag: { max: number; median: number; samples: number; appended: number; rate: number };
}

async function measure(runtime: Runtime, warehouse: Warehouse): Promise<Run> {
  const { eventStore, identityRules } = runtime;
  const priority = identityRules.priority;
  const raw = await rawRate(runtime, warehouse);
  // The raw run's rows are garbage by now: the projector does not pay for a
  // heap of a million rows it never made.
  const projector = await openProjector({
    eventStore,
    warehouse,
    priority,
    batchEvents: BATCH_EVENTS,
  });
  const ours = await timed(() => projector.catchUp());
  const lag = await lagUnderLoad(runtime, projector);
  return {
    events: ours.value.events,
    rows: ours.value.rows,
    oursRate: ours.value.events / ours.seconds,
    rawRate: raw,
    lag,
  };
}

/** Log events a second chDB takes when given the projector's rows, made beforehand (which also warms the page cache). */
async function rawRate(runtime: Runtime, warehouse: Warehouse): Promise<number> {
  const rows = new Map<string, Row[]>();
  let events = 0;
  for await (const event of runtime.eventStore.readAll()) {
    events++;
    projectEvent(
      event,
      { priority: runtime.identityRules.priority },
      {
        add(table, row) {
          const list = rows.get(table);
          if (list) list.push(row);
          else rows.set(table, [row]);
        },
      },
    );
  }
  const raw = await timed(() => insertRaw(runtime, warehouse, rows));
  return events / raw.seconds;
}

/** The same rows straight into empty tables of a second database, batch by batch as the projector would. */
async function insertRaw(
  runtime: Runtime,
  warehouse: Warehouse,
  rows: ReadonlyMap<string, Row[]>,
): Promise<void> {
  const target = runtime.config.warehouse.target;
  const raw = await openWarehouse({ target, database: `${warehouse.database}_raw` });
  try {
    await migrate(raw);
    const batches = Math.max(...[...rows.values()].map((list) => list.length)) / BATCH_EVENTS;
    for (let i = 0; i < Math.ceil(batches); i++) {
      await Promise.all(
        [...rows].map(async ([table, list]) => {
          const slice = list.slice(
            Math.floor((i * list.length) / batches),
            Math.floor(((i + 1) * list.length) / batches),
          );
          if (slice.length === 0) return;
          const encoded = new EncodedRows(raw.table(table), columnNames(projectedTable(table)));
          for (const row of slice) encoded.add(row);
          await raw.writer.insert(encoded);
        }),
      );
    }
  } finally {
    await raw.client.command({ query: `DROP DATABASE IF EXISTS ${raw.database}` });
    await raw.close();
  }
}

/**
 * Follows the log while another process appends copies of its facts at a
 * steady rate (`projections-load.child.ts`); samples the lag every 100 ms.
 */
async function lagUnderLoad(
  runtime: Runtime,
  projector: Awaited<ReturnType<typeof openProjector>>,
): Promise<Run['lag']> {
  const controller = new AbortController();
  const following = projector.follow(controller.signal);
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('./projections-load.child.js', import.meta.url)),
      JSON.stringify(runtime.config.eventStore),
      String(LOAD_EVENTS_PER_SECOND),
      String(LOAD_SECONDS),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  const closed = once(child, 'close');
  const samples: number[] = [];
  let load: { appended: number; seconds: number } | undefined;
  let sampling: Promise<void> | undefined;
  for await (const line of lines) {
    if (line === 'ready') {
      sampling = (async () => {
        while (!load) {
          samples.push((await projector.lag()).seconds);
          await sleep(100);
        }
      })();
    } else {
      load = JSON.parse(line) as { appended: number; seconds: number };
    }
  }
  const [code] = (await closed) as [number | null];
  if (code !== 0 || !load) throw new Error(`projections-load.child exited with ${code}`);
  await sampling;
  // Let it drain, then stop.
  while ((await projector.lag()).events > 0) await sleep(50);
  controller.abort();
  await following;
  return {
    max: Math.max(...samples),
    median: median(samples),
    samples: samples.length,
    appended: load.appended,
    rate: load.appended / load.seconds,
  };
}

function formatReport(shoppers: number, ingested: number, run: Run): string {
  return [
    formatBenchReport(
      `projections: ${formatRate(shoppers)} shoppers (seed ${SEED}), ${formatRate(ingested)} events ingested, ${formatRate(run.events)} log events (with identity decisions) → ${formatRate(run.rows)} rows in chDB`,
      [{ name: THROUGHPUT, unit: 'events/s', ours: run.oursRate, raw: run.rawRate }],
      [{ row: THROUGHPUT, minRatio: MIN_RATIO, minOurs: MIN_EVENTS_PER_SECOND }],
    ),
    `raw = the same ${formatRate(run.rows)} rows, prepared in memory, encoded and inserted into empty tables in batches of ${formatRate(BATCH_EVENTS)} events' rows; ours reads the log, maps, inserts and checkpoints`,
    `lag under a steady ${formatRate(run.lag.rate)} events/s appended by another process for ${LOAD_SECONDS} s (${formatRate(run.lag.appended)} events appended; ${run.lag.samples} samples): max ${run.lag.max.toFixed(2)} s, median ${run.lag.median.toFixed(2)} s — target < ${MAX_LAG_SECONDS} s ${run.lag.max < MAX_LAG_SECONDS ? 'met' : 'NOT met'}`,
  ].join('\n');
}

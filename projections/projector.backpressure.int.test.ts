import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { aBatch, aShopper } from '../fixtures/builders.js';
import { openSampleLog, type SampleLog } from '../ingest/testing/sample-log.js';
import { DEFAULT_IDENTITY_RULES } from '../schemas/identity.js';
import { migrate } from '../warehouse/migrations.js';
import { CHECKPOINTS } from '../warehouse/tables.js';
import { openWarehouse, type Warehouse, type WarehouseWriter } from '../warehouse/warehouse.js';
import { openProjector } from './projector.js';

/**
 * A warehouse slower than the log (a busy ClickHouse, a big merge): the
 * projector must neither queue a batch per flush tick nor let a batch grow
 * past its size. Both held 100 batches in memory before; this is the bound.
 */
let sample: SampleLog;
let warehouse: Warehouse;
beforeAll(async () => {
  sample = await openSampleLog('tandem-projector-backpressure-');
  warehouse = await openWarehouse({
    target: { kind: 'chdb', path: join(sample.dir, 'clickhouse') },
    database: 'tandem',
  });
  await migrate(warehouse);
});
afterAll(async () => {
  await warehouse?.close();
  await sample?.close();
});

it('merges the batches that come due while a slow write is in flight, and never exceeds the batch size', async () => {
  /** The events count of each checkpoint written, in order. */
  const checkpoints: number[] = [];
  const slow: WarehouseWriter = {
    async insert(rows) {
      await sleep(40);
      if (rows.table === warehouse.table(CHECKPOINTS.name)) {
        const [line] = rows.lines;
        checkpoints.push(Number(JSON.parse(line ?? '[]')[rows.columns.indexOf('events')]));
      }
      return warehouse.writer.insert(rows);
    },
  };
  const batchEvents = 25;
  const projector = await openProjector({
    eventStore: sample.eventStore,
    warehouse: { ...warehouse, writer: slow },
    priority: DEFAULT_IDENTITY_RULES.priority,
    batchEvents,
    flushMs: 1,
  });
  const stop = new AbortController();
  const following = projector.follow(stop.signal);

  const calls = 200;
  const shopper = aShopper('pia').withDevice('phone').build();
  for (let i = 0; i < calls; i++) {
    const at = new Date(Date.UTC(2026, 0, 1, 0, 0, i));
    await sample.ingestor.tracking(
      aBatch([shopper.on('phone').views(`SKU-${i}`, at)]),
      Date.UTC(2026, 0, 2),
      { kind: 'web', id: 'web-shop' },
    );
    await sleep(2);
  }
  while ((await projector.lag()).events > 0) await sleep(20);
  stop.abort();
  await following;

  expect(checkpoints.at(-1)).toBe(calls);
  const sizes = checkpoints.map((events, i) => events - (checkpoints[i - 1] ?? 0));
  // One event every ~2 ms against a 40 ms write: a batch per flush tick
  // would be ~200 checkpoints; merged, about one per write.
  expect(checkpoints.length).toBeLessThan(calls / 4);
  expect(Math.max(...sizes)).toBeLessThanOrEqual(batchEvents);
  const result = await warehouse.client.query({
    query: `SELECT count() AS n FROM ${warehouse.table('events')}`,
    format: 'JSONEachRow',
  });
  expect(await result.json()).toEqual([{ n: calls }]);
}, 60_000);

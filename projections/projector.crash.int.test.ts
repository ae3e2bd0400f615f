import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSampleFiles } from '../fixtures/sample.js';
import { openResolver } from '../identity/resolver.js';
import { ingestSample, openSampleLog, type SampleLog } from '../ingest/testing/sample-log.js';
import { DEFAULT_IDENTITY_RULES } from '../schemas/identity.js';
import { migrate } from '../warehouse/migrations.js';
import { openWarehouse, type Warehouse } from '../warehouse/warehouse.js';
import { openProjector, readCheckpoint } from './projector.js';
import { expectedSampleCounts, warehouseCounts } from './testing/counts.js';

const child = fileURLToPath(new URL('./testing/projector.child.ts', import.meta.url));
const database = 'tandem';

/**
 * Invariant 2 under a crash: a projector killed with SIGKILL in the middle of
 * its batches, then restarted, leaves every count exact.
 */
describe('projector killed mid-batch', () => {
  let sample: SampleLog;
  const chdbPath = () => join(sample.dir, 'clickhouse');
  const open = () => openWarehouse({ target: { kind: 'chdb', path: chdbPath() }, database });

  beforeAll(async () => {
    sample = await openSampleLog('tandem-projector-crash-');
    await ingestSample(sample.ingestor);
    await (
      await openResolver({ eventStore: sample.eventStore, rules: DEFAULT_IDENTITY_RULES })
    ).catchUp();
    const warehouse = await open();
    await migrate(warehouse);
    await warehouse.close();
  });
  afterAll(() => sample?.close());

  it('restarts from its checkpoint and counts every row exactly once', async () => {
    const projector = spawn(
      process.execPath,
      ['--import', 'tsx', child, join(sample.dir, 'eventstore'), chdbPath(), database],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let batches = 0;
    for await (const line of createInterface({ input: projector.stdout })) {
      if (!line.includes('projected batch written')) continue;
      if (++batches === 6) {
        // Some batches are written; the next is being filled or inserted.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        projector.kill('SIGKILL');
        break;
      }
    }
    const [, signal] = await once(projector, 'exit');
    expect(signal).toBe('SIGKILL');

    let warehouse: Warehouse | undefined;
    try {
      warehouse = await open();
      const checkpoint = await readCheckpoint(warehouse, 'warehouse');
      expect(checkpoint?.events).toBeGreaterThanOrEqual(6 * 40);
      const restarted = await openProjector({
        eventStore: sample.eventStore,
        warehouse,
        priority: DEFAULT_IDENTITY_RULES.priority,
        batchEvents: 500,
      });
      const status = await restarted.catchUp();
      expect(status.events).toBeGreaterThan(0);
      expect(await warehouseCounts(warehouse)).toEqual(
        await expectedSampleCounts(await readSampleFiles()),
      );
      expect((await restarted.lag()).events).toBe(0);
    } finally {
      await warehouse?.close();
    }
  }, 120_000);
});

import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { collect } from '../eventstore/testing/helpers.js';
import { aBatch, aShopper } from '../fixtures/builders.js';
import { readSampleFiles } from '../fixtures/sample.js';
import { openResolver } from '../identity/resolver.js';
import { ingestSample, openSampleLog, type SampleLog } from '../ingest/testing/sample-log.js';
import { DEFAULT_IDENTITY_RULES, IdentityEventTypes as E } from '../schemas/identity.js';
import { SegmentBatch } from '../schemas/segment.js';
import { migrate } from '../warehouse/migrations.js';
import { PROJECTED_TABLES } from '../warehouse/tables.js';
import { describeOnTargets, warehouseTargets } from '../warehouse/testing/targets.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { openProjector, writeCheckpoint } from './projector.js';
import { rebuildProjections } from './rebuild.js';
import { expectedSampleCounts, warehouseCounts } from './testing/counts.js';

/**
 * The projections on a real log: the sample fixtures through the real ingest
 * into LMDB, resolved by the real resolver, projected into ClickHouse.
 */
const targets = await warehouseTargets();
let sample: SampleLog;
beforeAll(async () => {
  sample = await openSampleLog('tandem-projections-');
  await ingestSample(sample.ingestor);
  await resolve();
});
afterAll(async () => {
  await sample?.close();
  await Promise.all(targets.map((target) => target.dispose()));
});

const priority = DEFAULT_IDENTITY_RULES.priority;

async function resolve(): Promise<void> {
  const resolver = await openResolver({
    eventStore: sample.eventStore,
    rules: DEFAULT_IDENTITY_RULES,
  });
  await resolver.catchUp();
}

describeOnTargets('projections', targets, (target) => {
  let warehouse: Warehouse;
  beforeAll(async () => {
    warehouse = await target.open();
    await migrate(warehouse);
  });
  afterAll(async () => {
    await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${warehouse.database}` });
    await warehouse.close();
  });

  async function rows<T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
    const result = await warehouse.client.query({
      query: query.replaceAll('{db}', warehouse.database),
      query_params: params,
      format: 'JSONEachRow',
    });
    return result.json<T>();
  }

  const project = async (batchEvents = 500) =>
    (
      await openProjector({ eventStore: sample.eventStore, warehouse, priority, batchEvents })
    ).catchUp();

  it('holds exactly the generator’s events, orders, lines and revenue', async () => {
    const status = await project();
    expect(status.events).toBeGreaterThan(0);
    expect(await warehouseCounts(warehouse)).toEqual(
      await expectedSampleCounts(await readSampleFiles()),
    );
  });

  it('makes a merge visible through `identity` at once, without rewriting `events`', async () => {
    await project();
    const merges = (await collect(sample.eventStore.readAll())).filter(
      (event) => event.type === E.merged,
    );
    expect(merges.length).toBeGreaterThan(0);
    for (const merge of merges.slice(0, 20)) {
      const data = merge.data as { profileId: string; absorbed: string };
      const holders = await rows<{ profile_id: string }>(
        `SELECT DISTINCT profile_id FROM {db}.identity
         WHERE profile_id IN ({ids:Array(String)})`,
        { ids: [data.absorbed] },
      );
      expect(holders, `no identifier stays with absorbed ${data.absorbed}`).toEqual([]);
      const [absorbed] = await rows<{ status: string; merged_into: string }>(
        'SELECT status, merged_into FROM {db}.profiles WHERE profile_id = {id:String}',
        { id: data.absorbed },
      );
      expect(absorbed?.status).toBe('merged');
    }

    // A new shopper browses anonymously, then logs in as an account seen
    // elsewhere: their anonymous events move to that profile through `identity`.
    const ana = aShopper('ana-projections')
      .withAccount()
      .withDevice('laptop')
      .withDevice('phone')
      .build();
    const at = new Date('2026-02-02T10:00:00Z');
    await sample.ingestor.tracking(
      SegmentBatch.parse(aBatch([ana.on('laptop').logsIn(at)])),
      at.getTime(),
      { kind: 'web', id: 'web-shop' },
    );
    const later = new Date('2026-02-03T10:00:00Z');
    await sample.ingestor.tracking(
      SegmentBatch.parse(aBatch([ana.on('phone').views('SKU-000001', later)])),
      later.getTime(),
      { kind: 'web', id: 'web-shop' },
    );
    await resolve();
    await project();
    const eventsBefore = await rows<{ n: number }>('SELECT count() AS n FROM {db}.events');
    const profilesOfPhone = async () =>
      rows<{ profiles: number }>(
        `SELECT uniqExact(profile_id) AS profiles FROM {db}.profile_events
         WHERE occurred_at >= '2026-02-02'`,
      );
    expect(await profilesOfPhone()).toEqual([{ profiles: 2 }]);

    await sample.ingestor.tracking(
      SegmentBatch.parse(aBatch([ana.on('phone').logsIn(later)])),
      later.getTime(),
      { kind: 'web', id: 'web-shop' },
    );
    await resolve();
    await project();
    expect(await profilesOfPhone()).toEqual([{ profiles: 1 }]);
    const eventsAfter = await rows<{ n: number }>('SELECT count() AS n FROM {db}.events');
    expect(eventsAfter[0]?.n).toBe((eventsBefore[0]?.n ?? 0) + 1);
  });

  it('counts a re-delivered batch once', async () => {
    await project();
    const before = await warehouseCounts(warehouse);
    // As after a crash between the rows and the checkpoint: the checkpoint is behind.
    await writeCheckpoint(warehouse, 'warehouse', { commit: 1n, prepare: 1n }, 0);
    const status = await project(300);
    expect(status.events).toBeGreaterThan(1000);
    const stored = await rows<{ n: number }>(
      'SELECT count() AS n FROM {db}.events SETTINGS final = 0',
    );
    expect(stored[0]?.n).toBeGreaterThan(before.events.online + before.events.offline);
    expect(await warehouseCounts(warehouse)).toEqual(before);
  });

  it('says how far behind the log it is from the log itself, before it has read a thing', async () => {
    await writeCheckpoint(warehouse, 'warehouse', { commit: 1n, prepare: 1n }, 0);
    const projector = await openProjector({ eventStore: sample.eventStore, warehouse, priority });
    const head = Number((await sample.eventStore.headPosition())?.commit);
    const [next] = await collect(
      sample.eventStore.readAll({ from: { commit: 2n, prepare: 2n }, maxCount: 1 }),
    );
    vi.setSystemTime((next?.recordedAt.getTime() ?? 0) + 90_000);
    try {
      expect(await projector.lag()).toEqual({ events: head - 1, seconds: 90 });
    } finally {
      vi.useRealTimers();
    }
    await projector.catchUp();
    expect(await projector.lag()).toEqual({ events: 0, seconds: 0 });
  });

  it('rebuilds into shadow tables and swaps them in: equal to the incremental tables, readable throughout', async () => {
    await project();
    const dump = async () => {
      const tables: Record<string, unknown[]> = {};
      for (const spec of PROJECTED_TABLES)
        tables[spec.name] = await rows(`SELECT * FROM {db}.${spec.name} ORDER BY ${spec.orderBy}`);
      return tables;
    };
    const incremental = await dump();
    let duringRebuild: unknown;
    const report = await rebuildProjections({
      eventStore: sample.eventStore,
      warehouse,
      priority,
      batchEvents: 400,
      beforeSwap: async () => {
        duringRebuild = await warehouseCounts(warehouse);
      },
    });
    expect(report.rebuilt.events).toBeGreaterThan(1000);
    expect(duringRebuild).toEqual(await warehouseCounts(warehouse));
    expect(await dump()).toEqual(incremental);
    const leftovers = await rows<{ name: string }>(
      `SELECT name FROM system.tables WHERE database = '${warehouse.database}' AND name LIKE '%rebuild%'`,
    );
    expect(leftovers).toEqual([]);
  });
});

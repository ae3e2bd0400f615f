import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../eventstore/event-store.js';
import { aBatch, aShopper } from '../fixtures/builders.js';
import { rebuildProjections } from '../projections/rebuild.js';
import { openTestApi, type TestApi } from '../query-api/testing/api-app.js';
import { DEFAULT_IDENTITY_RULES } from '../schemas/identity.js';
import { PosReceipt } from '../schemas/pos.js';
import type { RetentionPolicy } from '../schemas/retention.js';
import { selectRows } from '../warehouse/select.js';
import { subjectStream } from './personal-data.js';
import { enforceRetention } from './retention.js';

const NOW = Date.parse('2026-11-20T00:00:00Z');
const OLD = '2025-06-01T10:00:00Z'; // 537 days before NOW
const RECENT = '2026-11-10T10:00:00Z';
const POLICY: RetentionPolicy = { clickstream: 400 };
const web = { kind: 'web', id: 'web-shop' } as const;

let api: TestApi;
let laptopId: string;
let tabletId: string;

/** Events of a stream as [type, occurredAt date], in order. */
async function streamEvents(stream: string): Promise<[string, string][]> {
  const events: RecordedEvent[] = [];
  for await (const event of api.sample.eventStore.readStream(stream)) events.push(event);
  return events.map((event) => [event.type, String(event.data.occurredAt).slice(0, 10)]);
}

/** Rows of `table` by day and `kind` (a column), as `{ 'YYYY-MM-DD kind': rows }`. */
async function rowsByDay(table: string, kind: string): Promise<Record<string, number>> {
  const rows = await selectRows<{ day: string; kind: string; n: number }>(
    api.warehouse.client,
    `SELECT toString(toDate(occurred_at)) AS day, ${kind} AS kind, count() AS n FROM tandem.${table}
     GROUP BY day, kind ORDER BY day, kind`,
  );
  return Object.fromEntries(rows.map((row) => [`${row.day} ${row.kind}`, row.n]));
}

const eventsByDay = () => rowsByDay('events', 'type');
/** The product interactions hold every event of `events` that names a product. */
const interactionsByDay = () => rowsByDay('product_interactions', 'event_name');

/** The log stream of an identifier's raw events. */
const streamOf = (type: string, value: string) =>
  subjectStream(api.sample.hasher.hash(type, value));

let ana: ReturnType<ReturnType<typeof aShopper>['build']>;
let cy: ReturnType<ReturnType<typeof aShopper>['build']>;

beforeAll(async () => {
  api = await openTestApi({ sample: false });
  ana = aShopper('ana-retention').withMemberCard().withDevice('laptop').build();
  cy = aShopper('cy-retention').withDevice('tablet').build();
  const laptop = ana.on('laptop');
  const calls = [
    laptop.views('SKU-1', OLD),
    laptop.views('SKU-2', OLD),
    laptop.views('SKU-3', RECENT),
    cy.on('tablet').views('SKU-1', OLD),
  ];
  laptopId = String(calls[0]?.anonymousId);
  tabletId = String(calls[3]?.anonymousId);
  await api.sample.ingestor.tracking(aBatch(calls, new Date(NOW)), NOW, web);
  await api.sample.ingestor.receipts(
    [
      PosReceipt.parse(
        ana.buysInStore({ store: 'S1', at: OLD, skus: ['SKU-1'], showsMemberCard: true }),
      ),
    ],
    NOW,
    'till',
  );
  await api.project();
}, 60_000);

afterAll(() => api.close());

describe('retention', () => {
  it('removes aged-out clickstream from the log and the warehouse, and keeps what is within its age', async () => {
    expect(await eventsByDay()).toEqual({
      '2025-06-01 pos.receipt': 1,
      '2025-06-01 track': 3,
      '2026-11-10 track': 1,
    });
    expect(await interactionsByDay()).toEqual({
      '2025-06-01 Order Completed': 1,
      '2025-06-01 Product Viewed': 3,
      '2026-11-10 Product Viewed': 1,
    });
    const report = await enforceRetention(
      { eventStore: api.sample.eventStore, warehouse: api.warehouse, policy: POLICY },
      NOW,
    );
    expect(report.log).toEqual({ streams: 2, events: 3 });
    expect(report.warehouse).toEqual({ events: 3, product_interactions: 3 });
    expect(report.cutoffs).toEqual({ clickstream: '2025-10-16T00:00:00.000Z' });

    expect(await streamEvents(streamOf('anonymous_id', laptopId))).toEqual([
      ['track', '2026-11-10'],
    ]);
    expect(await streamEvents(streamOf('anonymous_id', tabletId))).toEqual([]);
    // Orders are kept until a policy names them.
    expect(await streamEvents(streamOf('member_id', 'M-ana-retention'))).toEqual([
      ['pos.receipt', '2025-06-01'],
    ]);
    expect(await eventsByDay()).toEqual({ '2025-06-01 pos.receipt': 1, '2026-11-10 track': 1 });
    expect(await interactionsByDay()).toEqual({
      '2025-06-01 Order Completed': 1,
      '2026-11-10 Product Viewed': 1,
    });
  });

  it('is harmless to run again', async () => {
    const again = await enforceRetention(
      { eventStore: api.sample.eventStore, warehouse: api.warehouse, policy: POLICY },
      NOW,
    );
    expect(again.log).toEqual({ streams: 0, events: 0 });
    expect(again.warehouse).toEqual({ events: 0, product_interactions: 0 });
  });

  it('is not undone by a rebuild of the projections, which leaves out what has aged out', async () => {
    await rebuildProjections({
      eventStore: api.sample.eventStore,
      warehouse: api.warehouse,
      priority: DEFAULT_IDENTITY_RULES.priority,
      retention: { clickstream: 400, orders: 400 },
    });
    // The receipt is still in the log, but a rebuild under a policy that ages out orders leaves it out.
    expect(await eventsByDay()).toEqual({ '2026-11-10 track': 1 });
    expect(await interactionsByDay()).toEqual({ '2026-11-10 Product Viewed': 1 });
  });
});

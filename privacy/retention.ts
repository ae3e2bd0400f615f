/**
 * Retention: events older than their kind's maximum age leave the log and
 * the warehouse. A scheduled job (beside the projector, daily) enforces it;
 * the projector never writes an event that has aged out, so a rebuild does
 * not bring one back.
 *
 * The log only drops a stream's oldest events (`truncateBefore`, which is
 * what KurrentDB offers as well), so in each stream the events are removed
 * up to the first one still kept: an order kept for years keeps the
 * clickstream after it in the same stream until it ages out too. Streams are
 * mostly of one kind (a device's calls; a member card's receipts), so this
 * rarely holds anything back; those events are gone from the warehouse
 * either way. Age is by when the event happened (`occurredAt`). On
 * KurrentDB the events leave its files at the next scavenge, which keeps a
 * stream's last event.
 *
 * Identity decisions stay: a profile keeps its links and its consent
 * history after the facts that made them age out.
 */
import type { Logger } from 'pino';
import type { EventStore } from '../eventstore/event-store.js';
import { ORDER_COMPLETED } from '../schemas/envelope.js';
import {
  hasAgedOut,
  type RetentionCutoffs,
  type RetentionKind,
  type RetentionPolicy,
  retentionCutoffs,
} from '../schemas/retention.js';
import { clickhouseTime, type Warehouse } from '../warehouse/warehouse.js';
import type { AuditLog } from './audit.js';
import { deleteRowsWhere, prefixKeys } from './warehouse-person.js';

export interface RetentionReport {
  readonly cutoffs: Partial<Record<RetentionKind, string>>;
  /** Streams whose oldest events were removed, and how many events. */
  readonly log: { readonly streams: number; readonly events: number };
  /** Rows removed from each table. */
  readonly warehouse: Record<string, number>;
  readonly tookMs: number;
}

export interface RetentionDeps {
  readonly eventStore: EventStore;
  readonly warehouse: Warehouse;
  readonly policy: RetentionPolicy;
  readonly log?: Logger;
  /** Where each run is recorded (as the `system` key). */
  readonly audit?: AuditLog;
}

/** Removes what has aged out from the log and the warehouse. */
export async function enforceRetention(
  deps: RetentionDeps,
  now = Date.now(),
): Promise<RetentionReport> {
  const started = performance.now();
  const cutoffs = retentionCutoffs(deps.policy, now);
  const log = await truncateLog(deps.eventStore, cutoffs);
  const warehouse = await deleteAgedRows(deps.warehouse, cutoffs);
  const report: RetentionReport = {
    cutoffs: Object.fromEntries(
      Object.entries(cutoffs).map(([kind, at]) => [kind, new Date(at).toISOString()]),
    ),
    log,
    warehouse,
    tookMs: Math.round(performance.now() - started),
  };
  deps.log?.info(report, 'retention enforced');
  await deps.audit?.record({
    keyId: 'system',
    action: 'retention.enforced',
    outcome: 'ok',
    details: {
      logStreams: log.streams,
      logEvents: log.events,
      ...prefixKeys('warehouse.', warehouse),
    },
  });
  return report;
}

const TRUNCATIONS_AT_ONCE = 100;

/**
 * One pass over the log: for each stream, the revision of its first event
 * still kept; the events before it go.
 */
async function truncateLog(
  eventStore: EventStore,
  cutoffs: RetentionCutoffs,
): Promise<RetentionReport['log']> {
  if (Object.keys(cutoffs).length === 0) return { streams: 0, events: 0 };
  /** Stream → the revision after its last aged-out event, while no kept event was met. */
  const open = new Map<string, number>();
  const closed = new Set<string>();
  for await (const event of eventStore.readAll()) {
    if (closed.has(event.stream)) continue;
    if (hasAgedOut(event, cutoffs)) open.set(event.stream, event.revision + 1);
    else {
      closed.add(event.stream);
    }
  }
  let streams = 0;
  let events = 0;
  // Truncations issued together share the store's commits: about 100 at a time was 3–6× faster on LMDB.
  const pending = [...open];
  for (let start = 0; start < pending.length; start += TRUNCATIONS_AT_ONCE) {
    const removed = await Promise.all(
      pending
        .slice(start, start + TRUNCATIONS_AT_ONCE)
        .map(([stream, before]) => eventStore.truncateBefore(stream, before)),
    );
    for (const count of removed) {
      if (count > 0) streams++;
      events += count;
    }
  }
  if (events > 0) await eventStore.scrub();
  return { streams, events };
}

/** The warehouse rows of aged-out events, by kind. */
async function deleteAgedRows(
  warehouse: Warehouse,
  cutoffs: RetentionCutoffs,
): Promise<Record<string, number>> {
  const clickstream = `type IN ('track', 'page', 'screen', 'identify', 'alias', 'group') AND event_name != '${ORDER_COMPLETED}'`;
  const deletions: { table: string; where: string; cutoff: number | undefined }[] = [
    { table: 'events', where: clickstream, cutoff: cutoffs.clickstream },
    { table: 'events', where: `event_name = '${ORDER_COMPLETED}'`, cutoff: cutoffs.orders },
    // Every row here is a tracking call or a receipt, so what is not an order is clickstream.
    {
      table: 'product_interactions',
      where: `event_name != '${ORDER_COMPLETED}'`,
      cutoff: cutoffs.clickstream,
    },
    {
      table: 'product_interactions',
      where: `event_name = '${ORDER_COMPLETED}'`,
      cutoff: cutoffs.orders,
    },
    { table: 'orders', where: '1', cutoff: cutoffs.orders },
    { table: 'order_lines', where: '1', cutoff: cutoffs.orders },
  ];
  const removed: Record<string, number> = {};
  for (const { table, where, cutoff } of deletions) {
    if (cutoff === undefined) continue;
    const predicate = `(${where}) AND occurred_at < {cutoff:DateTime64(6, 'UTC')}`;
    const rows = await deleteRowsWhere(warehouse, table, predicate, {
      cutoff: clickhouseTime(cutoff),
    });
    removed[table] = (removed[table] ?? 0) + rows;
  }
  return removed;
}

/** Enforces retention now and then (first shortly after the start) until stopped; returns how to stop. */
export function scheduleRetention(
  deps: RetentionDeps & { readonly everyHours?: number; readonly firstAfterMs?: number },
): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve();
  const run = () => {
    running = enforceRetention(deps).catch((error: unknown) => {
      deps.log?.warn({ err: error }, 'retention could not be enforced; retrying at the next run');
    });
  };
  const first = setTimeout(run, deps.firstAfterMs ?? 60_000);
  const every = setInterval(run, (deps.everyHours ?? 24) * 3_600_000);
  first.unref();
  every.unref();
  return async () => {
    clearTimeout(first);
    clearInterval(every);
    await running;
  };
}

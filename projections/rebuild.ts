/**
 * Rebuilding the warehouse from the log without taking it away from readers.
 *
 * Every projected table gets an empty shadow (`<table>__rebuild`, the same
 * DDL); a projector of its own fills the shadows from the start of the log up
 * to its head; then `EXCHANGE TABLES` swaps each shadow with its table
 * atomically, so queries see the old rows until the swap and the rebuilt ones
 * after it, never an empty table. The old rows (now in the shadows) are
 * dropped. Events appended while the rebuild ran are then written to the
 * swapped-in tables from where the rebuild stopped, and the live projector's
 * checkpoint moves there: rows are idempotent, so a live projector that
 * wrote some of them already changes nothing.
 */
import type { Logger } from 'pino';
import type { EventStore } from '../eventstore/event-store.js';
import type { RetentionPolicy } from '../schemas/retention.js';
import { createTableSql, onCluster, PROJECTED_TABLES } from '../warehouse/tables.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import {
  DEFAULT_PROJECTOR,
  openProjector,
  type ProjectorStatus,
  readCheckpoint,
  writeCheckpoint,
} from './projector.js';

export interface RebuildOptions {
  readonly eventStore: EventStore;
  readonly warehouse: Warehouse;
  readonly priority: readonly string[];
  /** Days each kind of event is kept: what aged out is not rebuilt. */
  readonly retention?: RetentionPolicy;
  /** The live projector whose tables and checkpoint the rebuild replaces. */
  readonly name?: string;
  readonly batchEvents?: number;
  readonly log?: Logger;
  /** Called once the shadows are full, just before the swap (tests look at the live tables here). */
  readonly beforeSwap?: () => Promise<void>;
}

export interface RebuildReport {
  /** The rebuild's own pass over the log into the shadow tables. */
  readonly rebuilt: ProjectorStatus;
  /** Events appended during the rebuild, written after the swap. */
  readonly caughtUp: ProjectorStatus;
  readonly tables: readonly string[];
}

const SHADOW_SUFFIX = '__rebuild';

/** Rebuilds every projected table from the log and swaps it in atomically. */
export async function rebuildProjections(options: RebuildOptions): Promise<RebuildReport> {
  const { warehouse, log } = options;
  const name = options.name ?? DEFAULT_PROJECTOR;
  const rebuildName = `${name}${SHADOW_SUFFIX}`;
  const ddl = { database: warehouse.database, cluster: warehouse.cluster };
  const cluster = onCluster(ddl);
  const shadows: Record<string, string> = {};
  for (const spec of PROJECTED_TABLES) {
    const shadow = `${spec.name}${SHADOW_SUFFIX}`;
    shadows[spec.name] = shadow;
    await warehouse.client.command({
      query: `DROP TABLE IF EXISTS ${warehouse.table(shadow)}${cluster} SYNC`,
    });
    await warehouse.client.command({ query: createTableSql(spec, ddl, shadow) });
  }
  // A fresh checkpoint: the rebuild starts at the beginning of the log.
  await warehouse.client.command({
    query: `DELETE FROM ${warehouse.table('projector_checkpoints')} WHERE projector = {name:String}`,
    query_params: { name: rebuildName },
  });
  const rebuilder = await openProjector({
    eventStore: options.eventStore,
    warehouse,
    priority: options.priority,
    ...(options.retention ? { retention: options.retention } : {}),
    name: rebuildName,
    tableNames: shadows,
    ...(options.batchEvents ? { batchEvents: options.batchEvents } : {}),
    ...(log ? { log } : {}),
  });
  const rebuilt = await rebuilder.catchUp();
  log?.info({ events: rebuilt.events, rows: rebuilt.rows }, 'shadow tables built; swapping');
  await options.beforeSwap?.();

  const pairs = PROJECTED_TABLES.map(
    (spec) => `${warehouse.table(spec.name)} AND ${warehouse.table(shadows[spec.name] as string)}`,
  );
  await warehouse.client.command({ query: `EXCHANGE TABLES ${pairs.join(', ')}${cluster}` });
  for (const shadow of Object.values(shadows))
    await warehouse.client.command({
      query: `DROP TABLE IF EXISTS ${warehouse.table(shadow)}${cluster} SYNC`,
    });

  const checkpoint = await readCheckpoint(warehouse, rebuildName);
  if (checkpoint) await writeCheckpoint(warehouse, name, checkpoint.position, checkpoint.events);
  const live = await openProjector({
    eventStore: options.eventStore,
    warehouse,
    priority: options.priority,
    ...(options.retention ? { retention: options.retention } : {}),
    name,
    ...(log ? { log } : {}),
  });
  const caughtUp = await live.catchUp();
  return { rebuilt, caughtUp, tables: PROJECTED_TABLES.map((spec) => spec.name) };
}

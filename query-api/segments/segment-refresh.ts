/**
 * Refreshing a saved segment: evaluate its current definition, record who
 * entered and who left since the last refresh, and keep the member list.
 *
 * The work stays in ClickHouse (INSERT … SELECT), so a million-member
 * segment never travels through this process:
 *   1. entered = members now who are not in `segment_members`;
 *   2. left    = rows of `segment_members` no longer members;
 *   3. both go to `segment_membership_history` under this refresh's number,
 *      and to `segment_members` (left ones as deleted rows);
 *   4. the refresh, with its counts, is appended to the segment's log.
 * A refresh cut short runs again under the same number (the log did not
 * record it): history rows are keyed by (segment, profile, refresh), so the
 * rerun replaces them rather than adding to them.
 */
import type { Logger } from 'pino';
import { selectRows } from '../../warehouse/select.js';
import { clickhouseTime, type Warehouse } from '../../warehouse/warehouse.js';
import { compileSegment } from './segment-compiler.js';
import type { RefreshRecord, SegmentStore } from './segment-store.js';

export interface RefreshDeps {
  readonly warehouse: Warehouse;
  readonly segments: SegmentStore;
}

/** Saved segments by id for `segment` conditions: the version in force at `at`, or the current one. */
export function segmentLookup(segments: SegmentStore, at?: Date) {
  return (id: string) => {
    if (at) return segments.versionAt(id, at)?.definition;
    try {
      const segment = segments.get(id);
      return segment.archivedAt ? undefined : segment.definition;
    } catch {
      return undefined;
    }
  };
}

/** Refreshes one segment now; `by` is the key (or `scheduler`) that asked. */
export async function refreshSegment(
  deps: RefreshDeps,
  segmentId: string,
  by: string,
  now = new Date(),
): Promise<RefreshRecord> {
  const { warehouse, segments } = deps;
  await segments.refresh();
  const segment = segments.get(segmentId);
  const compiled = compileSegment(segment.definition.condition, {
    database: warehouse.database,
    now,
    lookup: segmentLookup(segments),
  });
  const refresh = (segment.lastRefresh?.refresh ?? 0) + 1;
  const params = {
    ...compiled.params,
    refresh_segment: segmentId,
    refresh_number: refresh,
    refresh_at: clickhouseTime(now),
    refresh_version: segment.version,
  };
  const members = `SELECT profile_id FROM ${warehouse.table('segment_members')} WHERE segment_id = {refresh_segment:String}`;
  const history = warehouse.table('segment_membership_history');
  const record = (change: 'entered' | 'left', from: string) =>
    warehouse.client.command({
      query: `INSERT INTO ${history} (segment_id, profile_id, change, at, refresh, segment_version)
SELECT {refresh_segment:String}, profile_id, '${change}', {refresh_at:DateTime64(3, 'UTC')}, {refresh_number:UInt64}, {refresh_version:UInt32}
FROM (${from})`,
      query_params: params,
    });
  await record('entered', `${compiled.sql} AND profile_id NOT IN (${members})`);
  await record(
    'left',
    `SELECT profile_id FROM (${members}) WHERE profile_id NOT IN (${compiled.sql})`,
  );
  await warehouse.client.command({
    query: `INSERT INTO ${warehouse.table('segment_members')} (segment_id, profile_id, since, refresh, is_deleted)
SELECT segment_id, profile_id, at, refresh, change = 'left'
FROM ${history} WHERE segment_id = {refresh_segment:String} AND refresh = {refresh_number:UInt64}`,
    query_params: params,
  });
  const [counts] = await selectRows<{ size: number; entered: number; left: number }>(
    warehouse.client,
    `SELECT (SELECT count() FROM (${members})) AS size,
            countIf(change = 'entered') AS entered, countIf(change = 'left') AS left
     FROM ${history} WHERE segment_id = {refresh_segment:String} AND refresh = {refresh_number:UInt64}`,
    params,
  );
  return segments.recordRefresh(segmentId, {
    refresh,
    version: segment.version,
    by,
    size: Number(counts?.size ?? 0),
    entered: Number(counts?.entered ?? 0),
    left: Number(counts?.left ?? 0),
  });
}

/**
 * Refreshes each live segment with an interval when it is due, checking
 * every `everyMs`. Run it in one process per deployment (the projector's),
 * so two schedulers never refresh the same segment at once.
 */
export function scheduleRefreshes(
  deps: RefreshDeps & { readonly log: Logger; readonly everyMs?: number },
): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    await deps.segments.refresh();
    for (const segment of deps.segments.list()) {
      if (segment.refreshIntervalMinutes === null) continue;
      const last = Date.parse(segment.lastRefresh?.at ?? segment.createdAt);
      const due =
        segment.lastRefresh === undefined ||
        Date.now() - last >= segment.refreshIntervalMinutes * 60_000;
      if (!due) continue;
      try {
        const done = await refreshSegment(deps, segment.segmentId, 'scheduler');
        deps.log.info({ segmentId: segment.segmentId, ...done }, 'segment refreshed');
      } catch (error) {
        deps.log.error(
          { err: error, segmentId: segment.segmentId },
          'segment refresh failed; retrying at the next tick',
        );
      }
    }
  };
  const timer = setInterval(() => {
    running = running.then(tick).catch((error: unknown) => {
      deps.log.error(
        { err: error },
        'could not read the saved segments; retrying at the next tick',
      );
    });
  }, deps.everyMs ?? 30_000).unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}

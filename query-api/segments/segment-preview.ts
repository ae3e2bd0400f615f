/**
 * A segment's preview in one query: its size, how its members split by the
 * channels they were seen on (online only, offline only, both, neither), and
 * a random sample of member ids.
 *
 * The member query appears twice — once as the members, once to narrow the
 * events scanned for the channel split to the members' identifiers (which
 * lets the `identifier_hash` bloom filter skip granules for small segments).
 * The split reads every event of the members, not a window, so it costs a
 * scan of `events.identifier_hash` that the member query alone, filtered by
 * time first, does not.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { SegmentCondition } from '../../schemas/segment-definition.js';
import { clickhouseTime } from '../../warehouse/warehouse.js';
import { assertDatabaseName } from './compile-context.js';
import { type CompiledSegment, type CompileOptions, compileSegment } from './segment-compiler.js';

/** The most profile ids a preview samples. */
export const MAX_PREVIEW_SAMPLE = 1000;

/** What `previewSql` needs besides the compiled segment. */
export interface PreviewOptions {
  readonly database: string;
  /** The same `asOf` the segment was compiled with: the channel split then counts what the log held then. */
  readonly asOf?: Date | undefined;
  /** Profile ids to sample (default 20, at most `MAX_PREVIEW_SAMPLE`). */
  readonly sampleSize?: number | undefined;
  /** Seed of the sample, so a preview repeated on the same data samples the same ids. */
  readonly seed?: number | undefined;
}

/** What a preview answers. */
export interface SegmentPreview {
  readonly size: number;
  readonly onlineOnly: number;
  readonly offlineOnly: number;
  readonly both: number;
  /** Members with no events at all (e.g. matched by traits or consent alone). */
  readonly neither: number;
  readonly sample: string[];
}

/** The one query that answers a preview of `compiled`; one row, columns as in `SegmentPreview`. */
export function previewSql(compiled: CompiledSegment, options: PreviewOptions): CompiledSegment {
  const { database } = options;
  assertDatabaseName(database);
  const sampleSize = options.sampleSize ?? 20;
  if (!Number.isInteger(sampleSize) || sampleSize < 0 || sampleSize > MAX_PREVIEW_SAMPLE)
    throw new RangeError(`sampleSize must be an integer from 0 to ${MAX_PREVIEW_SAMPLE}`);
  const asOf = options.asOf
    ? "occurred_at <= {preview_as_of:DateTime64(3, 'UTC')} AND received_at <= {preview_as_of:DateTime64(3, 'UTC')} AND "
    : '';
  const sql = `SELECT count() AS size,
  countIf(a.online AND NOT a.offline) AS online_only,
  countIf(a.offline AND NOT a.online) AS offline_only,
  countIf(a.online AND a.offline) AS in_both,
  countIf(NOT a.online AND NOT a.offline) AS neither,
  ${
    // groupArraySample refuses a size of 0.
    sampleSize === 0
      ? "CAST([], 'Array(String)')"
      : 'groupArraySample({preview_sample:UInt32}, {preview_seed:UInt64})(m.profile_id)'
  } AS sample
FROM (${compiled.sql}) AS m
LEFT JOIN (
  SELECT i.profile_id AS profile_id, max(e.online) AS online, max(e.offline) AS offline
  FROM (
    SELECT identifier_hash, max(channel = 'online') AS online, max(channel = 'offline') AS offline
    FROM ${database}.events
    WHERE ${asOf}identifier_hash IN (
      SELECT identifier_hash FROM ${database}.identity WHERE profile_id IN (${compiled.sql}))
    GROUP BY identifier_hash) AS e
  INNER JOIN ${database}.identity AS i ON i.identifier_hash = e.identifier_hash
  GROUP BY profile_id) AS a ON a.profile_id = m.profile_id`;
  return {
    sql,
    params: {
      ...compiled.params,
      preview_sample: sampleSize,
      preview_seed: options.seed ?? 1,
      ...(options.asOf ? { preview_as_of: clickhouseTime(options.asOf) } : {}),
    },
  };
}

/** Compiles `condition`, runs its preview, and says how long the query took. */
export async function previewSegment(
  client: ClickHouseClient,
  condition: SegmentCondition,
  options: CompileOptions & Pick<PreviewOptions, 'sampleSize' | 'seed'>,
): Promise<SegmentPreview & { readonly tookMs: number }> {
  const started = performance.now();
  const { sql, params } = previewSql(compileSegment(condition, options), options);
  const result = await client.query({ query: sql, query_params: params, format: 'JSONEachRow' });
  const [row] = await result.json<{
    size: number;
    online_only: number;
    offline_only: number;
    in_both: number;
    neither: number;
    sample: string[];
  }>();
  return {
    size: Number(row?.size ?? 0),
    onlineOnly: Number(row?.online_only ?? 0),
    offlineOnly: Number(row?.offline_only ?? 0),
    both: Number(row?.in_both ?? 0),
    neither: Number(row?.neither ?? 0),
    sample: row?.sample ?? [],
    tookMs: Math.round(performance.now() - started),
  };
}

/**
 * The segment compiler: a condition tree (schemas/segment-definition.ts) →
 * one parameterised ClickHouse SELECT of the member profile ids.
 *
 * Strategy
 * - The query is `SELECT profile_id FROM profiles WHERE status = 'active'
 *   AND <predicate>`. `and` / `or` / `not` become boolean operators, and
 *   every leaf becomes `profile_key [NOT] IN (subquery)`: ClickHouse builds one
 *   hash set per leaf and probes it once per profile, whatever the nesting.
 *   Sets and joins are on the tables' 128-bit keys (`profile_key`,
 *   `identifier_key`), which hash several times faster than the strings they
 *   stand for; only the members come out as profile ids.
 * - A leaf's subquery reads one fact table, filtered first by time (the
 *   tables are partitioned and sorted by `occurred_at`), aggregated per
 *   identifier, and only then joined to `identity` — as the
 *   `profile_events` view does — so the join sees one row per identifier.
 * - Conditions that profiles without any facts satisfy (`did not`:
 *   `exactly 0`, `at_most n`; `!=` and `not_exists` on traits; purchase
 *   comparisons true at zero; consent not granted) compile to `NOT IN` the
 *   profiles that fail them, so they are valid on their own.
 * - Every user value — names, paths, numbers, times, the trait keys and
 *   property path keys — is a query parameter (`{pN:Type}`); the SQL text is
 *   built only from the tree's shape and from table names.
 * - `segment` leaves are inlined from `lookup`, keeping the chain of ids
 *   followed, so a cycle or an unknown id is a validation error naming it.
 * - Windows end at `asOf ?? now`. With `asOf`, only facts the log held then
 *   count: events that occurred and were received by then, orders whose
 *   event was, consent as the newest statement made by then
 *   (`consent_history`). What as-of cannot reconstruct: traits and
 *   identity are read as they are now (the warehouse keeps only their
 *   latest version), so merges, splits, erasures and trait changes made
 *   since apply; a profile merged away since is not a member even if it was
 *   one then. The product catalog (categories) is current too.
 * - Every query runs with `final = 1` (QUERY_SETTINGS), so each key's newest
 *   row counts once; nothing here reads around it.
 */
import {
  MAX_CONDITION_DEPTH,
  type SegmentCondition,
  type SegmentDefinition,
} from '../../schemas/segment-definition.js';
import {
  assertDatabaseName,
  type CompileContext,
  type ConditionPath,
  invalidCondition,
  SqlParams,
} from './compile-context.js';
import { compileEvent, compileSequence } from './compile-events.js';
import { compileConsent, compilePurchase, compileTrait } from './compile-profile.js';

/** How many conditions one compiled segment may hold once references are inlined. */
export const MAX_COMPILED_CONDITIONS = 500;

/** What a compilation needs besides the tree. */
export interface CompileOptions {
  /** The warehouse database (`Warehouse.database`). */
  readonly database: string;
  /** The time windows end at, unless `asOf` is given. */
  readonly now: Date;
  /** Answer as the segment stood then, from what the log held then. */
  readonly asOf?: Date | undefined;
  /** Saved segments by id, for `segment` conditions. */
  readonly lookup?: ((id: string) => SegmentDefinition | undefined) | undefined;
}

/** A query and its parameters, for `client.query({query: sql, query_params: params})`. */
export interface SqlQuery {
  readonly sql: string;
  readonly params: Record<string, unknown>;
}

/** A segment's members query; `sql` selects their profile ids. */
export interface CompiledSegment extends SqlQuery {
  /** The condition on `profiles` rows that `sql` selects by, for a query that wants other columns of them. */
  readonly where: string;
}

/** Compiles `condition` to the SELECT of its active member profile ids. */
export function compileSegment(
  condition: SegmentCondition,
  options: CompileOptions,
): CompiledSegment {
  assertDatabaseName(options.database);
  const params = new SqlParams();
  const context: Walk = {
    params,
    table: (name) => `${options.database}.${name}`,
    reference: options.asOf ?? options.now,
    asOf: options.asOf,
    lookup: options.lookup,
    following: [],
    anchor: undefined,
    conditions: 0,
  };
  const where = `status = 'active' AND (${compile(condition, context, ['condition'], 1)})`;
  return {
    sql: `SELECT profile_id FROM ${context.table('profiles')} WHERE ${where}`,
    where,
    params: params.values,
  };
}

interface Walk extends CompileContext {
  readonly lookup: CompileOptions['lookup'];
  /** Segment ids being inlined, outermost first. */
  readonly following: string[];
  /** Where the outermost reference being inlined sits: errors inside it are reported there. */
  anchor: ConditionPath | undefined;
  conditions: number;
}

/** A validation error at `path`, or at the reference that brought the failing condition in. */
function fail(walk: Walk, path: ConditionPath, message: string) {
  const inSegment = walk.following.length > 0 ? ` (in segment ${walk.following.join(' → ')})` : '';
  return invalidCondition(walk.anchor ?? path, `${message}${inSegment}`);
}

function compile(
  condition: SegmentCondition,
  walk: Walk,
  path: ConditionPath,
  depth: number,
): string {
  if (depth > MAX_CONDITION_DEPTH)
    throw fail(
      walk,
      path,
      `conditions nest deeper than ${MAX_CONDITION_DEPTH} levels once segment references are inlined`,
    );
  walk.conditions += 1;
  if (walk.conditions > MAX_COMPILED_CONDITIONS)
    throw fail(
      walk,
      path,
      `the segment holds more than ${MAX_COMPILED_CONDITIONS} conditions once segment references are inlined`,
    );
  switch (condition.type) {
    case 'and':
    case 'or': {
      const operator = condition.type === 'and' ? ' AND ' : ' OR ';
      const parts = condition.conditions.map((child, i) =>
        compile(child, walk, [...path, 'conditions', i], depth + 1),
      );
      return `(${parts.join(operator)})`;
    }
    case 'not':
      return `NOT (${compile(condition.condition, walk, [...path, 'condition'], depth + 1)})`;
    case 'trait':
      return compileTrait(condition, walk);
    case 'event':
      return compileEvent(condition, walk);
    case 'purchase':
      return compilePurchase(condition, walk);
    case 'sequence':
      return compileSequence(condition, walk);
    case 'consent':
      return compileConsent(condition, walk);
    case 'segment':
      return inline(condition.id, walk, path, depth);
  }
}

/** The predicate of saved segment `id`, compiled in place. */
function inline(id: string, walk: Walk, path: ConditionPath, depth: number): string {
  const idPath = [...path, 'id'];
  if (walk.following.includes(id))
    throw invalidCondition(
      walk.anchor ?? idPath,
      `segment ${id} refers to itself: ${[...walk.following, id].join(' → ')}`,
    );
  const definition = walk.lookup?.(id);
  if (!definition) throw fail(walk, idPath, `segment ${id} is not a saved segment`);
  const outermost = walk.following.length === 0;
  if (outermost) walk.anchor = idPath;
  walk.following.push(id);
  try {
    return compile(definition.condition, walk, path, depth);
  } finally {
    walk.following.pop();
    if (outermost) walk.anchor = undefined;
  }
}

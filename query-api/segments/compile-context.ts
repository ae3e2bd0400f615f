/**
 * What every part of the segment compiler shares: the query parameters it
 * collects (user values only ever reach ClickHouse as `{pN:Type}`), the
 * database, the reference time and `asOf`, and the time filters built from
 * them.
 */
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { Window } from '../../schemas/segment-definition.js';
import { clickhouseTime } from '../../warehouse/warehouse.js';

/**
 * The settings of a subquery that reads `events` without FINAL, because a
 * copy of an event (a re-delivered batch, before the parts merge) cannot
 * change its answer: whether matching events exist, how many distinct event
 * ids, the first time one was known. Kept inside that subquery: every query
 * runs with `final = 1`, and the tables around it (identity, profiles) need
 * their newest rows.
 */
export const COPIES_HARMLESS = 'final = 0';

/** A day in milliseconds: windows and `withinDays` count days of 24 hours (UTC). */
export const DAY_MS = 86_400_000;

/** The ClickHouse type of a time parameter, as the tables store times. */
const TIME = "DateTime64(3, 'UTC')";

/** A path into the condition tree, for error messages (`condition.conditions.1.id`). */
export type ConditionPath = readonly (string | number)[];

/** Collects query parameters; each value gets a fresh name. */
export class SqlParams {
  readonly values: Record<string, unknown> = {};
  #next = 0;

  /** `{pN:type}` standing for `value`. */
  add(value: unknown, type: string): string {
    const name = `p${this.#next++}`;
    this.values[name] = value;
    return `{${name}:${type}}`;
  }

  /** A time parameter, as `clickhouseTime` writes it. */
  time(time: Date | number | string): string {
    return this.add(clickhouseTime(time), TIME);
  }
}

/** The compiler's state while it walks one tree. */
export interface CompileContext {
  readonly params: SqlParams;
  /** `db.name` of a warehouse table. */
  table(name: string): string;
  /** Windows end here: `asOf`, or now. */
  readonly reference: Date;
  /** When set, only what the log held then counts (see the compiler's strategy comment). */
  readonly asOf: Date | undefined;
}

/** The [from, to) of a window in milliseconds; `lastDays` ends at the reference time, inclusive. */
export function windowRange(
  window: Window,
  reference: Date,
): { from: number; to: number; toInclusive: boolean } {
  if (window.lastDays !== undefined) {
    const to = reference.getTime();
    return { from: to - window.lastDays * DAY_MS, to, toInclusive: true };
  }
  return {
    from: Date.parse(window.from as string),
    to: Date.parse(window.to as string),
    toInclusive: false,
  };
}

/**
 * Filters on `column` (an `occurred_at`) for `window`, and on `asOf`:
 * the event happened by then and the log had received it by then (when
 * `received` names the receipt column; `orders` has none, see purchases).
 */
export function timeFilters(
  context: CompileContext,
  window: Window | undefined,
  column: string,
  received: string | undefined,
): string[] {
  const filters: string[] = [];
  if (window) {
    const range = windowRange(window, context.reference);
    filters.push(`${column} >= ${context.params.time(range.from)}`);
    filters.push(`${column} ${range.toInclusive ? '<=' : '<'} ${context.params.time(range.to)}`);
  }
  if (context.asOf) {
    const asOf = context.params.time(context.asOf);
    filters.push(`${column} <= ${asOf}`);
    if (received) filters.push(`${received} <= ${asOf}`);
  }
  return filters;
}

/** `a AND b AND …`, or `true` when there is nothing to hold. */
export function allOf(filters: readonly string[]): string {
  return filters.length === 0 ? 'true' : filters.join(' AND ');
}

/** Throws unless `database` is a plain identifier: it is the one name spliced into the SQL. */
export function assertDatabaseName(database: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(database))
    throw new TypeError(`not a database name: ${JSON.stringify(database)}`);
}

/** A validation error naming the condition it is about (a 400 through the error handler). */
export function invalidCondition(path: ConditionPath, message: string): TandemError {
  const where = path.join('.');
  return new TandemError(ErrorCodes.VALIDATION, `${where}: ${message}`, {
    issues: [{ path: where, message }],
  });
}

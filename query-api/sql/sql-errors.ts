/**
 * ClickHouse's errors on an analyst's query, as the errors the API answers
 * with: over the time limit → QUERY_TIMEOUT (408); over the memory or result
 * limits → QUERY_TOO_LARGE (413); any other fault of the query (a syntax
 * error, an unknown column, a type mismatch, a missing parameter) →
 * SQL_REFUSED (400) with ClickHouse's message, its stack trace and version
 * cut. Errors that are not ClickHouse's (a closed connection) pass through
 * unchanged and become a 500.
 */
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { AnalystLimits, Warehouse } from '../../warehouse/warehouse.js';
import { lineAndColumn } from './sql-lexer.js';

/** ClickHouse error codes (`src/Common/ErrorCodes.cpp`). */
const CODES = {
  SYNTAX_ERROR: 62,
  UNKNOWN_TABLE: 60,
  TOO_MANY_ROWS: 158,
  TIMEOUT_EXCEEDED: 159,
  TOO_MANY_BYTES: 307,
  MEMORY_LIMIT_EXCEEDED: 241,
  TOO_MANY_ROWS_OR_BYTES: 396,
  UNKNOWN_QUERY_PARAMETER: 456,
} as const;

const TOO_LARGE: ReadonlySet<number> = new Set([
  CODES.TOO_MANY_ROWS,
  CODES.TOO_MANY_BYTES,
  CODES.TOO_MANY_ROWS_OR_BYTES,
]);

/**
 * The API's error for `error`, thrown by ClickHouse on `statement` sent after
 * `prefix` (e.g. `EXPLAIN AST `, whose length shifts the positions ClickHouse
 * reports); `error` itself when it is not ClickHouse's.
 */
export function analystError(
  error: unknown,
  warehouse: Pick<Warehouse, 'analystLimits'>,
  statement: string,
  prefix = '',
): unknown {
  if (!isClickHouseError(error)) return error;
  const code = Number(error.code);
  const message = clean(error.message);
  const limits = warehouse.analystLimits;
  const details = { clickhouse: { code, type: error.type } };
  if (code === CODES.TIMEOUT_EXCEEDED)
    return new TandemError(
      ErrorCodes.QUERY_TIMEOUT,
      `the query ran longer than the ${limits.maxExecutionSeconds} s an analyst query may take: filter on occurred_at, aggregate, or add a LIMIT`,
      details,
    );
  if (code === CODES.MEMORY_LIMIT_EXCEEDED)
    return new TandemError(
      ErrorCodes.QUERY_TOO_LARGE,
      `the query needed more than the ${size(limits.maxMemoryBytes)} of memory an analyst query may use: filter, or group by fewer keys`,
      details,
    );
  if (TOO_LARGE.has(code))
    return new TandemError(
      ErrorCodes.QUERY_TOO_LARGE,
      `the result is larger than an analyst query may return (${resultLimits(limits)}): aggregate, filter or add a LIMIT (${message})`,
      details,
    );
  if (code === CODES.SYNTAX_ERROR)
    return new TandemError(
      ErrorCodes.SQL_REFUSED,
      syntaxError(message, statement, prefix),
      details,
    );
  if (code === CODES.UNKNOWN_QUERY_PARAMETER) {
    const name = /`([^`]+)`/.exec(message)?.[1] ?? '';
    return new TandemError(
      ErrorCodes.SQL_REFUSED,
      `query parameter ${name} has no value: give it in params (${message})`,
      details,
    );
  }
  return new TandemError(ErrorCodes.SQL_REFUSED, message, details);
}

interface ClickHouseErrorShape extends Error {
  readonly code: string;
  readonly type?: string | undefined;
}

/**
 * By shape, not `instanceof`: chDB throws client-common's ClickHouseError,
 * a different copy of the class than the one @clickhouse/client exports.
 */
function isClickHouseError(error: unknown): error is ClickHouseErrorShape {
  const code: unknown = error instanceof Error ? Reflect.get(error, 'code') : undefined;
  return typeof code === 'string' && /^\d+$/.test(code);
}

/** ClickHouse's message without its stack trace, version and trailing dots. */
function clean(message: string): string {
  return message
    .replace(/\s*Stack trace[\s\S]*$/, '')
    .replace(/\s*\(version [^)]*\)\s*$/, '')
    .replace(/^(Code: \d+\. )?DB::Exception: /, '')
    .trim()
    .replace(/\.+$/, '');
}

/**
 * "Syntax error: failed at position 39 (end of query): . Expected one of: …"
 * as line and column in the analyst's own query. ClickHouse counts bytes
 * from 1 in the text it was sent, `prefix` included.
 */
function syntaxError(message: string, statement: string, prefix: string): string {
  const position = /failed at position (\d+)/.exec(message)?.[1];
  const expected = /Expected one of: ([\s\S]*)$/.exec(message)?.[1]?.split(', ') ?? [];
  const hint =
    expected.length === 0
      ? ''
      : `; expected one of: ${expected.slice(0, 8).join(', ')}${expected.length > 8 ? ', …' : ''}`;
  if (position === undefined) return `syntax error: ${message}`;
  const byte = Math.max(0, Number(position) - 1 - Buffer.byteLength(prefix));
  const offset = Buffer.from(statement).subarray(0, byte).toString().length;
  const { line, column } = lineAndColumn(statement, offset);
  const near = statement.slice(offset, offset + 30).split('\n')[0];
  return `syntax error at line ${line}, column ${column}, ${near ? `at "${near}"` : 'at the end of the query'}${hint}`;
}

function resultLimits(limits: AnalystLimits): string {
  return `${limits.maxResultRows.toLocaleString('en')} rows, ${size(limits.maxResultBytes)}`;
}

function size(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

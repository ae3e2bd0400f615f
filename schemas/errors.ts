/**
 * The error catalogue: every expected failure has a stable code that clients,
 * logs and tests can match on. Codes are transport-neutral; the HTTP layer maps
 * them to status codes in one place.
 */
export const ErrorCodes = {
  /** Input failed validation; `details.issues` lists each bad field with its path. */
  VALIDATION: 'TANDEM_ERR_VALIDATION',
  /** A setting (environment variable) is missing or has a bad value. */
  CONFIG_INVALID: 'TANDEM_ERR_CONFIG_INVALID',
  /** An append's expected stream state did not hold. */
  WRONG_EXPECTED_VERSION: 'TANDEM_ERR_WRONG_EXPECTED_VERSION',
  /** The stream was deleted (tombstoned) and cannot be read or written again. */
  STREAM_DELETED: 'TANDEM_ERR_STREAM_DELETED',
  /** The stream has never been written. */
  STREAM_NOT_FOUND: 'TANDEM_ERR_STREAM_NOT_FOUND',
  /** Some, not all, of an append's event ids exist already, or exist in another stream. */
  IDEMPOTENCY_CONFLICT: 'TANDEM_ERR_IDEMPOTENCY_CONFLICT',
  /** An event is larger than the store accepts. */
  EVENT_TOO_LARGE: 'TANDEM_ERR_EVENT_TOO_LARGE',
  /** The store was closed; nothing more can be read or written through this handle. */
  STORE_CLOSED: 'TANDEM_ERR_STORE_CLOSED',
  /** The embedded warehouse (chDB) is held by another process: chDB runs in one process at a time. */
  WAREHOUSE_IN_USE: 'TANDEM_ERR_WAREHOUSE_IN_USE',
  /** No credentials, or credentials that match no key. */
  UNAUTHORIZED: 'TANDEM_ERR_UNAUTHORIZED',
  /** A request, batch or event is larger than its limit; the message names the limit. */
  PAYLOAD_TOO_LARGE: 'TANDEM_ERR_PAYLOAD_TOO_LARGE',
  /** The credentials are valid but lack the role the operation needs; the message names it. */
  FORBIDDEN: 'TANDEM_ERR_FORBIDDEN',
  /** Too many requests from one key in the rate-limit window. */
  RATE_LIMITED: 'TANDEM_ERR_RATE_LIMITED',
  /** An analyst's SQL was refused before it ran (not one SELECT, a table outside the documented ones, a table function, a settings override…). */
  SQL_REFUSED: 'TANDEM_ERR_SQL_REFUSED',
  /** A query ran longer than its time limit. */
  QUERY_TIMEOUT: 'TANDEM_ERR_QUERY_TIMEOUT',
  /** A query's result or memory use went over its limit. */
  QUERY_TOO_LARGE: 'TANDEM_ERR_QUERY_TOO_LARGE',
  /** No such route or resource. */
  NOT_FOUND: 'TANDEM_ERR_NOT_FOUND',
  /** What was asked for does not exist yet (e.g. no recommendation model trained); retry later. */
  NOT_READY: 'TANDEM_ERR_NOT_READY',
  /** The resource is not in a state that allows this yet (e.g. an export of a request still running). */
  CONFLICT: 'TANDEM_ERR_CONFLICT',
  /** An unexpected failure; details are in the server log, never in the answer. */
  INTERNAL: 'TANDEM_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** One bad field of an input: its path from the input's root (`batch.1.event`) and what is wrong. */
export interface FieldIssue {
  readonly path: string;
  readonly message: string;
}

/** Base class of every expected Tandem failure: a stable code, a message, structured details. */
export class TandemError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** True when `error` is a TandemError with the given code. */
export function isTandemError(error: unknown, code?: ErrorCode): error is TandemError {
  return error instanceof TandemError && (code === undefined || error.code === code);
}

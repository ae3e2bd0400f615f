/**
 * The one place errors become HTTP answers. Expected failures carry a code
 * from the catalogue and get the status it maps to; validation failures list
 * the path and message of every bad field; anything else is a 500 whose body
 * says nothing internal (the log has the details).
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { type ErrorCode, ErrorCodes, type FieldIssue, isTandemError } from '../schemas/errors.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.VALIDATION]: 400,
  [ErrorCodes.UNAUTHORIZED]: 401,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: 400,
  [ErrorCodes.EVENT_TOO_LARGE]: 400,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.RATE_LIMITED]: 429,
  [ErrorCodes.SQL_REFUSED]: 400,
  [ErrorCodes.QUERY_TIMEOUT]: 408,
  [ErrorCodes.QUERY_TOO_LARGE]: 413,
  [ErrorCodes.STREAM_DELETED]: 409,
  [ErrorCodes.WRONG_EXPECTED_VERSION]: 409,
  [ErrorCodes.NOT_READY]: 503,
  [ErrorCodes.CONFLICT]: 409,
};

/** Installs the error handler and a JSON 404. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply
      .status(404)
      .send(
        body(ErrorCodes.NOT_FOUND, `no route for ${request.method} ${request.url.split('?')[0]}`),
      );
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.flatMap((issue) =>
        fieldIssues(toPath(issue.instancePath), {
          code: issue.keyword,
          path: [],
          message: issue.message ?? 'invalid',
          errors: issue.params.errors as ZodIssue['errors'],
        }),
      );
      return reply.status(400).send(body(ErrorCodes.VALIDATION, describe(issues), issues));
    }
    if (isTandemError(error)) {
      const issues = (error.details.issues as FieldIssue[] | undefined) ?? [];
      return reply.status(STATUS[error.code] ?? 400).send(body(error.code, error.message, issues));
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const limit = Math.round((request.routeOptions.bodyLimit ?? 0) / 1024);
      const message = `the request body is larger than the ${limit} KB this endpoint takes`;
      return reply.status(400).send(body(ErrorCodes.PAYLOAD_TOO_LARGE, message));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .status(415)
        .send(body(ErrorCodes.VALIDATION, 'send JSON (Content-Type: application/json)'));
    }
    if (error.code === 'Z_DATA_ERROR' || error.code === 'Z_BUF_ERROR') {
      return reply.status(400).send(body(ErrorCodes.VALIDATION, 'the body is not valid gzip'));
    }
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.status(error.statusCode).send(body(ErrorCodes.VALIDATION, error.message));
    }
    request.log.error({ err: error }, 'request failed');
    return reply
      .status(500)
      .send(body(ErrorCodes.INTERNAL, 'internal error; the server log has the details'));
  });
}

function body(code: ErrorCode, message: string, issues: readonly FieldIssue[] = []) {
  return { success: false, error: { code, message, ...(issues.length > 0 ? { issues } : {}) } };
}

function describe(issues: readonly FieldIssue[]): string {
  const listed = issues.slice(0, 5).map((issue) => `${issue.path || '(body)'}: ${issue.message}`);
  return `invalid input: ${listed.join('; ')}${issues.length > 5 ? `; and ${issues.length - 5} more` : ''}`;
}

/** What zod reports of a bad field; a union's issue carries each branch's issues. */
interface ZodIssue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly errors?: readonly (readonly ZodIssue[])[] | undefined;
}

/**
 * The bad fields behind one issue at `path`. When no branch of a union fits,
 * zod says only "Invalid input" at the union. When exactly one branch suits
 * the value's type (an array, not one entry, for a body of one entry or an
 * array of them), that branch's own issues name the bad fields instead:
 * `3.price`, not the whole body.
 */
function fieldIssues(path: string, issue: ZodIssue): FieldIssue[] {
  const branches = issue.code === 'invalid_union' ? (issue.errors ?? []) : [];
  const suiting = branches.filter((branch) => !branch.some(rejectsType));
  if (suiting.length !== 1) return [{ path, message: issue.message }];
  return (suiting[0] as readonly ZodIssue[]).flatMap((inner) =>
    fieldIssues([path, ...inner.path.map(String)].filter((part) => part !== '').join('.'), inner),
  );
}

/** Whether an issue says the value a branch got is of another type altogether. */
function rejectsType(issue: ZodIssue): boolean {
  if (issue.path.length > 0) return false;
  if (issue.code === 'invalid_type') return true;
  return (
    issue.code === 'invalid_union' &&
    (issue.errors ?? []).every((branch) => branch.some(rejectsType))
  );
}

/** `/batch/1/event` → `batch.1.event`. */
function toPath(instancePath: string): string {
  return instancePath.replace(/^\//, '').replaceAll('/', '.');
}

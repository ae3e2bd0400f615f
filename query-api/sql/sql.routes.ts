/**
 * `POST /v1/sql {query, format, params}`: analysts' SQL on the read-only
 * connection (`sql-run.ts`), answered as JSON, CSV or an Arrow IPC stream;
 * refused with 400, stopped with 408 (time) or 413 (result or memory size).
 * Every query that reaches the handler is audited with the key that sent it,
 * refused ones too; the answer goes out only once the audit entry is written.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorCodes, isTandemError } from '../../schemas/errors.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { withoutLiterals } from './sql-lexer.js';
import { type AnalystResult, runAnalystQuery, SQL_FORMATS } from './sql-run.js';

/** Who sent a query, as the app's authorization found them. */
export interface SqlPrincipal {
  readonly keyId: string;
  readonly name: string;
}

/** One audit entry: a query, who ran it, what it read, how it ended (`ok` or an error code). */
export interface SqlAuditEntry {
  readonly keyId: string;
  readonly action: 'sql.query';
  readonly query: string;
  readonly tables: string[];
  readonly rows?: number;
  readonly outcome: 'ok' | string;
}

/** What the app gives the plugin: the warehouse, its authorization and its audit log. */
export interface SqlRoutesOptions {
  readonly warehouse: Warehouse;
  /** Throws (401, 403) unless the request may run SQL; runs before the body is validated. */
  readonly authorize: (request: FastifyRequest) => SqlPrincipal | Promise<SqlPrincipal>;
  readonly audit: (entry: SqlAuditEntry) => Promise<void>;
}

/** Largest query text, in characters. */
export const MAX_QUERY_CHARS = 100_000;

const Scalar = z.union([z.string(), z.number(), z.boolean()]);

/** The request body. */
export const SqlQueryBody = z.strictObject({
  query: z
    .string()
    .min(1)
    .max(MAX_QUERY_CHARS)
    .describe('One SELECT (or WITH … SELECT); values through `{name:Type}` placeholders'),
  format: z.enum(SQL_FORMATS).default('json'),
  params: z
    .record(
      z
        .string()
        .regex(
          /^[A-Za-z_][A-Za-z0-9_]*$/,
          'a parameter name is letters, digits and _, not first a digit',
        ),
      z.union([Scalar, z.array(Scalar)]),
    )
    .optional()
    .describe('Values of the `{name:Type}` placeholders, by name'),
});

/** The analysts' SQL endpoint, as one encapsulated plugin. */
export const sqlRoutes: FastifyPluginAsync<SqlRoutesOptions> = async (app, options) => {
  const { warehouse, authorize, audit } = options;
  const principals = new WeakMap<FastifyRequest, SqlPrincipal>();
  // Before validation, so a caller without a key learns nothing about bodies.
  app.addHook('preValidation', async (request) => {
    principals.set(request, await authorize(request));
  });
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/sql',
    // Room for the longest query in multi-byte UTF-8, and its parameters.
    {
      schema: {
        tags: ['sql'],
        summary:
          'One SELECT over the documented tables and views, answered as JSON, CSV or an Arrow IPC stream',
        body: SqlQueryBody,
      },
      bodyLimit: 1024 * 1024,
    },
    async (request, reply) => {
      const principal = principals.get(request) as SqlPrincipal;
      const { query, format, params } = request.body;
      let result: AnalystResult | undefined;
      let failure: unknown;
      try {
        result = await runAnalystQuery(warehouse, { query, format, params });
      } catch (error) {
        failure = error;
      }
      await audit({
        keyId: principal.keyId,
        action: 'sql.query',
        // The shape of the query, never the values an analyst typed into it.
        query: withoutLiterals(query),
        tables: [...(result?.tables ?? tablesNamed(failure))],
        ...(result?.rows === undefined ? {} : { rows: result.rows }),
        outcome: result ? 'ok' : isTandemError(failure) ? failure.code : ErrorCodes.INTERNAL,
      });
      if (!result) throw failure;
      return reply.type(result.contentType).send(result.stream);
    },
  );
};

/** The tables a refusal names (e.g. `system.tables`), for the audit. */
function tablesNamed(error: unknown): string[] {
  const tables = isTandemError(error) ? error.details.tables : undefined;
  return Array.isArray(tables) ? tables.map(String) : [];
}

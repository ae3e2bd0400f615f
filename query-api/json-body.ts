/**
 * How request bodies are read: gzip-encoded or not, limited in size after
 * decompression, strictly UTF-8, parsed without prototype pollution, and
 * refused when nested deeper than any real payload is. Each failure is a
 * 400 or 413 that says what was wrong, never a 500.
 */
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { ErrorCodes, TandemError } from '../schemas/errors.js';

export const MAX_JSON_DEPTH = 64;

/** Installs the gzip decoder and the JSON parser on an app; each route's `bodyLimit` caps the decoded size. */
export function installJsonBody(app: FastifyInstance): void {
  app.addHook('preParsing', async (request: FastifyRequest, _reply, payload) => {
    const encoding = request.headers['content-encoding'];
    if (encoding === undefined || encoding === 'identity') return payload;
    if (encoding !== 'gzip') {
      throw new TandemError(
        ErrorCodes.VALIDATION,
        `Content-Encoding "${encoding}" is not supported (use gzip or none)`,
      );
    }
    // The decompressed body is what the size limit counts, so a small bomb cannot grow past it.
    delete request.headers['content-length'];
    return payload.pipe(createGunzip());
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ['application/json', 'text/plain'],
    { parseAs: 'buffer' },
    (_request, body, done) => {
      try {
        done(null, parseJson(body as Buffer));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a JSON body or throws a validation TandemError saying why it is not one. */
export function parseJson(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new TandemError(ErrorCodes.VALIDATION, 'the body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    const reason =
      error instanceof SyntaxError
        ? error.message
        : 'it uses __proto__ or constructor.prototype keys';
    throw new TandemError(ErrorCodes.VALIDATION, `the body is not acceptable JSON: ${reason}`);
  }
  const depth = maxDepth(value);
  if (depth === NOT_FINITE) {
    const path = nonFinitePath(value) ?? [];
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `invalid input: ${path.join('.')}: a number too large to represent`,
      { issues: [{ path: path.join('.'), message: 'a number too large to represent' }] },
    );
  }
  if (depth > MAX_JSON_DEPTH) {
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `the body nests ${depth} levels deep; the most is ${MAX_JSON_DEPTH}`,
    );
  }
  return value;
}

/** What `maxDepth` answers for a body holding a number JSON.parse made infinite (`1e400`). */
const NOT_FINITE = Number.POSITIVE_INFINITY;

/**
 * Nesting depth, counting objects and arrays (the root is 1). The recursion
 * stops one level past the limit, so a hostile body cannot overflow the stack.
 */
function maxDepth(value: unknown, depth = 1): number {
  if (typeof value === 'number' && !Number.isFinite(value)) return NOT_FINITE;
  if (value === null || typeof value !== 'object') return depth - 1;
  if (depth > MAX_JSON_DEPTH) return depth;
  let deepest = depth;
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const found = maxDepth(record[key], depth + 1);
    if (found > deepest) {
      deepest = found;
      if (found > MAX_JSON_DEPTH) return found;
    }
  }
  return deepest;
}

/** Where the first infinite number is (`batch.0.properties.n`); only walked once one is known to be there. */
function nonFinitePath(value: unknown): string[] | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : [];
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const below = nonFinitePath(child);
    if (below) return [key, ...below];
  }
  return undefined;
}

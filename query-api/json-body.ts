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
  if (depth > MAX_JSON_DEPTH) {
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `the body nests ${depth} levels deep; the most is ${MAX_JSON_DEPTH}`,
    );
  }
  return value;
}

/** Nesting depth, iteratively, so a hostile body cannot overflow the stack. */
function maxDepth(root: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (value === null || typeof value !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (depth > MAX_JSON_DEPTH) return depth;
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return deepest;
}

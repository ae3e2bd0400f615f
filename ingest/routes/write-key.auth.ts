import type { FastifyRequest } from 'fastify';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { WriteKeySource, WriteKeys } from '../write-keys.js';

/**
 * The source a request's write key stands for, found as Segment looks for it:
 * the Basic auth user name, else `writeKey` in a JSON body. Throws a 401-coded
 * error when there is none or it is unknown.
 */
export function authenticateWriteKey(
  request: FastifyRequest,
  writeKeys: WriteKeys,
): WriteKeySource {
  const body = request.body as { writeKey?: unknown } | undefined;
  const key =
    basicUser(request.headers.authorization) ??
    (typeof body?.writeKey === 'string' ? body.writeKey : undefined);
  const found = key === undefined ? undefined : writeKeys.resolve(key);
  if (!found) {
    throw new TandemError(
      ErrorCodes.UNAUTHORIZED,
      key === undefined
        ? 'no write key: send it as the Basic auth user name or as writeKey'
        : 'unknown write key',
    );
  }
  return found;
}

/** The user name of a Basic Authorization header, or undefined when there is none. */
function basicUser(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const user = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':')[0];
  return user ? user : undefined;
}

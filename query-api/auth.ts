/**
 * Who may call the query API: every route in the API scope needs an API key
 * (`Authorization: Bearer tdm_…`); each route names the roles it takes, and
 * `admin` passes every check. A missing or unknown key is a 401, a key
 * without the role a 403 that names the role needed. Each key has its own
 * rate limit, counted after authentication so nobody can spend another key's.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { Role } from '../schemas/api-keys.js';
import { ErrorCodes, TandemError } from '../schemas/errors.js';
import type { KeyRegistry, Principal } from './keys/key-registry.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

export interface AuthOptions {
  readonly keys: KeyRegistry;
  /** Requests per key per minute. */
  readonly requestsPerMinute: number;
}

/**
 * Installs authentication and the per-key rate limit on `scope` (an
 * encapsulated plugin holding the API routes).
 */
export async function installAuth(scope: FastifyInstance, options: AuthOptions): Promise<void> {
  scope.decorateRequest('principal', undefined);
  // The OpenAPI document says which routes take an API key.
  scope.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, security: [{ apiKey: [] }] };
  });
  scope.addHook('onRequest', async (request, reply) => {
    const token = bearer(request);
    const principal = token === undefined ? undefined : options.keys.authenticate(token);
    if (!principal) {
      void reply.header('WWW-Authenticate', 'Bearer realm="tandem"');
      throw new TandemError(
        ErrorCodes.UNAUTHORIZED,
        token === undefined
          ? 'no API key: send it as Authorization: Bearer <key>'
          : 'unknown or revoked API key',
      );
    }
    request.principal = principal;
  });
  await scope.register(rateLimit, {
    hook: 'preHandler',
    max: options.requestsPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => request.principal?.keyId ?? request.ip,
    errorResponseBuilder: (_request, context) =>
      new TandemError(
        ErrorCodes.RATE_LIMITED,
        `this key made more than ${context.max} requests in a minute; retry after ${context.after}`,
      ),
  });
}

/** A preHandler that lets the call through only for a key holding one of `roles` (or admin). */
export function requireRole(...roles: readonly Role[]): preHandlerAsyncHookHandler {
  return async (request) => assertRole(principalOf(request), ...roles);
}

/** Throws FORBIDDEN, naming the roles needed, unless `principal` holds one of `roles` (or admin). */
export function assertRole(principal: Principal, ...roles: readonly Role[]): void {
  if (roles.some((role) => holds(principal, role))) return;
  const needed = [...roles, 'admin'];
  throw new TandemError(
    ErrorCodes.FORBIDDEN,
    `this needs the ${needed.join(' or ')} role; key ${principal.keyId} has ${principal.roles.join(', ')}`,
    { needed, has: principal.roles },
  );
}

/** The authenticated caller of a request in the API scope. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new TandemError(ErrorCodes.UNAUTHORIZED, 'no API key');
  return request.principal;
}

/** Whether the caller holds `role` (admins hold every role). */
export function holds(principal: Principal, role: Role): boolean {
  return principal.roles.includes('admin') || principal.roles.includes(role);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header?.startsWith('Bearer ')) return undefined;
  const token = header.slice(7).trim();
  return token === '' ? undefined : token;
}

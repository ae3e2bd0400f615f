/**
 * Privacy officers' requests: file one (access, erasure, suppress-only,
 * unsuppress), follow its state, list them, and download an access export.
 * Filing answers 202 at once; the request runs in the background (see
 * privacy/request-runner.ts) and its state shows how far it got.
 */
import { PassThrough, type Writable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from '../../privacy/audit.js';
import type { Person } from '../../privacy/person.js';
import type { PrivacyRequests } from '../../privacy/requests.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { Identifier } from '../../schemas/identifier.js';
import { ProfileId } from '../../schemas/identity.js';
import { PrivacyRequestBody, PrivacyRequestId, PrivacyRequestView } from '../../schemas/privacy.js';
import { principalOf, requireRole } from '../auth.js';

export interface PrivacyRoutesOptions {
  readonly requests: PrivacyRequests;
  readonly audit: AuditLog;
  readonly parseIdentifier: (text: string) => Identifier;
  /** A request was filed: the runner takes it up. */
  readonly filed: () => void;
  /** Writes the access export (a zip) of `person` to `out`. */
  readonly exportAccess: (person: Person, requestId: string, out: Writable) => Promise<unknown>;
}

export const privacyRoutes: FastifyPluginAsync<PrivacyRoutesOptions> = async (app, options) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const officers = { preHandler: requireRole('privacy_officer') };
  const tags = ['privacy'];
  const params = z.object({ requestId: PrivacyRequestId });

  api.post(
    '/v1/privacy/requests',
    {
      ...officers,
      schema: {
        tags,
        summary: 'File a privacy request: access, erasure, suppress_only or unsuppress',
        description:
          'Answers 202 with the request; it runs in the background (received → resolving → running → verifying → completed | failed). The identifier is `TYPE:VALUE` (email, phone, member_id, user_id, anonymous_id, payment_token…) or `profile:prf_…`; it is sealed with the request and, after an erasure, unreadable.',
        body: PrivacyRequestBody,
        response: { 202: PrivacyRequestView },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      checkIdentifier(request.body.identifier, options.parseIdentifier);
      const view = await options.requests.file(request.body, principal.keyId);
      await options.audit.record({
        keyId: principal.keyId,
        action: 'privacy.request_filed',
        outcome: 'ok',
        details: { requestId: view.id, type: view.type, identifierType: view.identifierType },
      });
      options.filed();
      return reply.code(202).send(view);
    },
  );

  api.get(
    '/v1/privacy/requests',
    {
      ...officers,
      schema: {
        tags,
        summary: 'Privacy requests, newest first',
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
        response: { 200: z.object({ requests: z.array(PrivacyRequestView) }) },
      },
    },
    async (request) => ({ requests: await options.requests.list(request.query.limit) }),
  );

  api.get(
    '/v1/privacy/requests/:requestId',
    {
      ...officers,
      schema: {
        tags,
        summary: "A privacy request's state, the time it entered each state, and its report",
        params,
        response: { 200: PrivacyRequestView },
      },
    },
    async (request) => options.requests.get(request.params.requestId),
  );

  api.get(
    '/v1/privacy/requests/:requestId/export',
    {
      ...officers,
      schema: {
        tags,
        summary: "Download a completed access request's export (zip: JSON and CSV, with a README)",
        description:
          'Built as it downloads, from the log (personal fields unsealed) and the warehouse; nothing of it is kept. Every download is in the audit trail.',
        params,
        produces: ['application/zip'],
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { requestId } = request.params;
      const loaded = await options.requests.load(requestId);
      if (loaded.view.type !== 'access')
        throw new TandemError(
          ErrorCodes.CONFLICT,
          `request ${requestId} is ${loaded.view.type}, not access: it has no export`,
        );
      if (loaded.view.state !== 'completed' || !loaded.person)
        throw new TandemError(
          ErrorCodes.CONFLICT,
          `request ${requestId} is ${loaded.view.state}: its export is ready once it is completed`,
        );
      await options.audit.record({
        keyId: principal.keyId,
        action: 'privacy.export_downloaded',
        outcome: 'ok',
        details: { requestId },
      });
      const out = new PassThrough();
      options.exportAccess(loaded.person, requestId, out).catch((error: unknown) => {
        request.log.error({ err: error, requestId }, 'access export failed mid-way');
        out.destroy(error as Error);
      });
      return reply
        .type('application/zip')
        .header('content-disposition', `attachment; filename="${requestId}.zip"`)
        .send(out);
    },
  );
};

/** Rejects an identifier that names no one, with its path, before anything is stored. */
function checkIdentifier(text: string, parseIdentifier: (text: string) => Identifier): void {
  const fail = (message: string) => {
    throw new TandemError(ErrorCodes.VALIDATION, `invalid input: identifier: ${message}`, {
      issues: [{ path: 'identifier', message }],
    });
  };
  if (text.startsWith('profile:')) {
    if (!ProfileId.safeParse(text.slice('profile:'.length)).success)
      fail('not a profile id (profile:prf_…)');
    return;
  }
  try {
    parseIdentifier(text);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Consent from consent-management platforms: `POST /v1/consents` takes one
 * statement or an array of up to 1000, from the platform's write key, all or
 * none. A bad field, an identifier that is no identifier or a purpose this
 * deployment does not ask for answers 400 naming its path, and nothing is
 * stored.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ConsentStatement } from '../../schemas/consent.js';
import type { Ingestor } from '../ingestor.js';
import type { WriteKeys } from '../write-keys.js';
import { authenticateWriteKey } from './write-key.auth.js';

export const MAX_CONSENT_BYTES = 1024 * 1024;
export const MAX_CONSENT_STATEMENTS = 1000;

export interface ConsentsRoutesOptions {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
}

const Statements = z.union([
  ConsentStatement,
  z.array(ConsentStatement).min(1).max(MAX_CONSENT_STATEMENTS),
]);

const Accepted = z.object({
  success: z.literal(true),
  accepted: z
    .int()
    .describe('Statements now durably in the log, including ones a retry had already stored'),
  suppressed: z
    .int()
    .describe('Statements dropped because their identifier is suppressed (an erased person)'),
});

export const consentsRoutes: FastifyPluginAsync<ConsentsRoutesOptions> = async (
  app,
  { ingestor, writeKeys },
) => {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/consents',
    {
      schema: {
        tags: ['consent'],
        security: [{ writeKey: [] }],
        summary: 'Record consent statements from a consent-management platform',
        description: `One statement or an array of up to ${MAX_CONSENT_STATEMENTS}, all or none: a bad field, an identifier that does not normalise, or a purpose outside this deployment's (\`TANDEM_CONSENT_PURPOSES\`; by default analytics, personalization, marketing_email, marketing_sms) answers 400 naming its path, and nothing is stored. Per purpose the latest statement wins, on whichever of the person's identifiers it was made; every statement stays in the history. A statement sent again with its \`statementId\` (or, without one, with the same content and \`occurredAt\`) is stored once. Answers once the statements are durably in the log; the profile shows them once identity has read them.`,
        body: Statements,
        response: { 200: Accepted },
      },
      bodyLimit: MAX_CONSENT_BYTES,
    },
    async (request) => {
      const { sourceId } = authenticateWriteKey(request, writeKeys);
      const result = await ingestor.consents(request.body, Date.now(), sourceId);
      return { success: true as const, ...result };
    },
  );
};

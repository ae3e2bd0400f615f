/**
 * The audit trail, read back: `GET /v1/audit` for admins and privacy
 * officers, newest first, filtered by action, key and time, paged by cursor
 * back in time. Entries name keys, never people in the clear.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from '../../privacy/audit.js';
import { requireRole } from '../auth.js';

export interface AuditRoutesOptions {
  readonly audit: AuditLog;
}

const Time = z.iso.datetime({ offset: true });

const AuditQuery = z
  .object({
    action: z
      .string()
      .max(128)
      .regex(
        /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.?$/,
        'must be an action such as sql.query, or a prefix ending in a dot such as privacy.',
      )
      .optional()
      .describe(
        'An action (`sql.query`, `key.create`, `segment.export`, `profile.read_personal_data`), or a prefix ending in a dot (`privacy.`) for every action under it',
      ),
    keyId: z
      .string()
      .max(64)
      .regex(/^[a-z0-9_-]+$/, 'must be a key id such as key_0a1b2c3d4e5f, bootstrap-admin or cli')
      .optional()
      .describe('The key that acted: `key_…`, `bootstrap-admin`, or `cli` for the command line'),
    from: Time.optional().describe('Entries recorded at or after this time (ISO 8601)'),
    to: Time.optional().describe('Entries recorded before this time (ISO 8601)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z
      .string()
      .max(64)
      .optional()
      .describe('The `next` of the previous page: continue from there, back in time'),
  })
  .refine((query) => !query.from || !query.to || Date.parse(query.from) <= Date.parse(query.to), {
    path: ['to'],
    message: 'must not be before from',
  });

const Entry = z.object({
  id: z.string().describe('The entry’s event id in the log stream `tandem-audit`'),
  at: z.string().describe('When it was recorded'),
  keyId: z.string(),
  action: z.string(),
  outcome: z.string().describe('`ok`, or the error code it ended with'),
  details: z
    .record(z.string(), z.unknown())
    .describe('What the action needs to be understood later; never personal data'),
});

export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (app, { audit }) => {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/audit',
    {
      preHandler: requireRole('privacy_officer'),
      schema: {
        tags: ['audit'],
        summary: 'The audit trail, newest first: who did what with people’s data, and when',
        description:
          'Every SQL query, personal-data read, segment export, key change and privacy request, with the key that made it. A page may hold fewer than `limit` entries — even none — and still have a `next` when the filters matched little of the entries it looked at; follow `next` until it is null.',
        querystring: AuditQuery,
        response: {
          200: z.object({
            entries: z.array(Entry),
            next: z
              .string()
              .nullable()
              .describe('The cursor of the next, older page; null at the end'),
          }),
        },
      },
    },
    async (request) => {
      const { from, to, ...rest } = request.query;
      const page = await audit.page({
        ...rest,
        from: from === undefined ? undefined : new Date(from),
        to: to === undefined ? undefined : new Date(to),
      });
      return { entries: page.entries, next: page.next ?? null };
    },
  );
};

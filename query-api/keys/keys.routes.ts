/**
 * Key management for admins: `POST /v1/keys` makes an API key (roles) or a
 * source write key and shows its token once; `GET /v1/keys` lists them
 * without secrets; `DELETE /v1/keys/{id}` revokes one. Every change is in the
 * audit trail as well as in the key stream itself.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from '../../privacy/audit.js';
import { KeyGrant, KeyId } from '../../schemas/api-keys.js';
import { principalOf, requireRole } from '../auth.js';
import type { KeyRegistry } from './key-registry.js';

export interface KeysRoutesOptions {
  readonly keys: KeyRegistry;
  readonly audit: AuditLog;
}

export const KeyInfoSchema = z.object({
  keyId: z.string(),
  name: z.string(),
  grant: KeyGrant,
  createdBy: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().optional(),
  revokedBy: z.string().optional(),
});

const CreateKey = z.strictObject({
  name: z.string().trim().min(1).max(128),
  grant: KeyGrant,
});

export const keysRoutes: FastifyPluginAsync<KeysRoutesOptions> = async (app, { keys, audit }) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const admin = { preHandler: requireRole('admin') };
  api.post(
    '/v1/keys',
    {
      ...admin,
      schema: {
        tags: ['keys'],
        summary: 'Make an API key or a source write key; its token is shown only in this answer',
        body: CreateKey,
        response: { 201: z.object({ key: KeyInfoSchema, token: z.string() }) },
      },
    },
    async (request, reply) => {
      const { keyId } = principalOf(request);
      const created = await keys.create(request.body, keyId);
      await audit.record({
        keyId,
        action: 'key.create',
        outcome: 'ok',
        details: { created: created.key.keyId, grant: request.body.grant },
      });
      return reply.status(201).send(created);
    },
  );
  api.get(
    '/v1/keys',
    {
      ...admin,
      schema: {
        tags: ['keys'],
        summary: 'Every key, revoked ones included, without secrets',
        response: { 200: z.object({ keys: z.array(KeyInfoSchema) }) },
      },
    },
    async () => {
      await keys.refresh();
      return { keys: [...keys.list()] };
    },
  );
  api.delete(
    '/v1/keys/:keyId',
    {
      ...admin,
      schema: {
        tags: ['keys'],
        summary: 'Revoke a key; it stops working at once here, within a second elsewhere',
        params: z.object({ keyId: KeyId }),
        response: { 200: z.object({ key: KeyInfoSchema }) },
      },
    },
    async (request) => {
      const { keyId } = principalOf(request);
      const key = await keys.revoke(request.params.keyId, keyId);
      await audit.record({
        keyId,
        action: 'key.revoke',
        outcome: 'ok',
        details: { revoked: key.keyId },
      });
      return { key };
    },
  );
};

/**
 * Profiles: one by id, one by an identifier in the clear (`email:ana@…`,
 * normalised and hashed here so callers never handle hashes), a profile's
 * timeline across channels, and the identity decisions that made it.
 * Personal data is unsealed only for privacy officers, and each such read is
 * in the audit trail.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from '../../privacy/audit.js';
import { ErrorCodes, isTandemError } from '../../schemas/errors.js';
import type { Identifier } from '../../schemas/identifier.js';
import { ProfileId } from '../../schemas/identity.js';
import { assertRole, principalOf, requireRole } from '../auth.js';
import {
  findProfileId,
  type ProfileDeps,
  profileState,
  readIdentityExplanation,
  readPersonalData,
  readProfile,
  readTimeline,
} from './profile-reads.js';

export interface ProfilesRoutesOptions extends ProfileDeps {
  readonly audit: AuditLog;
  /** `email:ana@example.com` → the identifier as matching knows it; throws a validation error otherwise. */
  readonly parseIdentifier: (text: string) => Identifier;
}

const IDENTIFIER_EXAMPLE = 'email:ana@example.com';
const Include = z
  .enum(['personal_data'])
  .optional()
  .describe('`personal_data`: each identifier’s personal data, unsealed (privacy_officer only)');

const seenAt = z
  .string()
  .nullable()
  .describe('ISO 8601 time (UTC) of a touchpoint on that channel; null when never seen there');
const ProfileBody = z.object({
  profileId: z.string(),
  status: z.string(),
  mergedInto: z.string().optional(),
  identifierCounts: z.record(z.string(), z.number()),
  traits: z.record(z.string(), z.unknown()),
  consent: z.record(
    z.string(),
    z.object({ granted: z.boolean(), statedAt: z.string(), source: z.string() }),
  ),
  activity: z.object({
    events: z.number(),
    orders: z.number(),
    revenue: z.string(),
    firstSeenOnline: seenAt,
    lastSeenOnline: seenAt,
    firstSeenOffline: seenAt,
    lastSeenOffline: seenAt,
  }),
  personalData: z
    .array(z.object({ type: z.string(), personalData: z.record(z.string(), z.unknown()) }))
    .optional(),
});

const TimelineEntrySchema = z.object({
  eventId: z.string(),
  occurredAt: z.string(),
  channel: z.string().describe('`online` or `offline`'),
  sourceKind: z.string(),
  storeId: z.string(),
  type: z.string(),
  eventName: z.string(),
  pageName: z.string(),
  pagePath: z.string(),
  productIds: z.array(z.string()),
  categories: z.array(z.string()),
  orderId: z.string(),
  revenue: z.string(),
  currency: z.string(),
  properties: z.unknown(),
});

export const profilesRoutes: FastifyPluginAsync<ProfilesRoutesOptions> = async (app, options) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const readers = { preHandler: requireRole('marketer', 'analyst', 'privacy_officer') };

  const answer = async (
    request: FastifyRequest,
    profileId: string,
    include: 'personal_data' | undefined,
  ) => {
    const profile = await readProfile(options, profileId);
    if (include !== 'personal_data') return profile;
    const principal = principalOf(request);
    assertRole(principal, 'privacy_officer');
    const personalData = await readPersonalData(options, profileId);
    await options.audit.record({
      keyId: principal.keyId,
      action: 'profile.read_personal_data',
      outcome: 'ok',
      details: { profileId, identifiers: personalData.length },
    });
    return { ...profile, personalData };
  };

  api.get(
    '/v1/profiles/:profileId',
    {
      ...readers,
      schema: {
        tags: ['profiles'],
        summary: 'A profile: status, identifier counts, traits, consent and activity',
        params: z.object({ profileId: ProfileId }),
        querystring: z.object({ include: Include }),
        response: { 200: ProfileBody },
      },
    },
    (request) => answer(request, request.params.profileId, request.query.include),
  );

  api.get(
    '/v1/profiles',
    {
      preHandler: requireRole('marketer', 'privacy_officer'),
      schema: {
        tags: ['profiles'],
        summary:
          'The profile holding an identifier, given in the clear (it is normalised and hashed here)',
        querystring: z.object({
          identifier: z
            .string()
            .min(3)
            .max(320)
            .describe(
              `TYPE:VALUE, e.g. ${IDENTIFIER_EXAMPLE}, phone:+8613800138000, member_id:M-1`,
            ),
          include: Include,
        }),
        response: { 200: ProfileBody },
      },
    },
    async (request) => {
      const identifier = options.parseIdentifier(request.query.identifier);
      // Who looked a person up by their email or phone is on record: the type, never the value.
      const lookup = { keyId: principalOf(request).keyId, action: 'profile.lookup' };
      let profileId: string;
      try {
        profileId = await findProfileId(options, identifier);
      } catch (error) {
        await options.audit.record({
          ...lookup,
          outcome: isTandemError(error) ? error.code : ErrorCodes.INTERNAL,
          details: { identifierType: identifier.type },
        });
        throw error;
      }
      await options.audit.record({
        ...lookup,
        outcome: 'ok',
        details: { identifierType: identifier.type, profileId },
      });
      return answer(request, profileId, request.query.include);
    },
  );

  api.get(
    '/v1/profiles/:profileId/timeline',
    {
      ...readers,
      schema: {
        tags: ['profiles'],
        summary: 'Online and offline touchpoints in one chronology, newest first, paged',
        params: z.object({ profileId: ProfileId }),
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          before: z.string().max(200).optional().describe('the `next` cursor of the previous page'),
        }),
        response: {
          200: z.object({
            profileId: z.string(),
            entries: z.array(TimelineEntrySchema),
            next: z.string().nullable(),
          }),
        },
      },
    },
    async (request) => {
      const { profileId } = request.params;
      await profileState(options, profileId);
      const page = await readTimeline(options, profileId, request.query);
      return { profileId, ...page };
    },
  );

  api.get(
    '/v1/profiles/:profileId/identity',
    {
      ...readers,
      schema: {
        tags: ['profiles'],
        summary:
          'Every identity decision behind the profile: links, merges, refusals, splits, with rule and evidence',
        params: z.object({ profileId: ProfileId }),
        response: {
          200: z.object({
            profileId: z.string(),
            decisions: z.array(
              z.object({
                seq: z.number(),
                type: z.string(),
                profileId: z.string().optional(),
                rule: z.string().optional(),
                evidence: z.object({ eventId: z.string(), position: z.string() }),
                decisionEventId: z.string(),
                explanation: z.string(),
              }),
            ),
          }),
        },
      },
    },
    async (request) => ({
      profileId: request.params.profileId,
      decisions: await readIdentityExplanation(options, request.params.profileId),
    }),
  );
};

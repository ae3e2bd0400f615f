import { z } from 'zod';
import { BuiltInIdentifierType } from './identifier.js';
import { pii } from './pii.js';

/** Purposes consent is asked for by default; deployments may configure more. */
export const DEFAULT_PURPOSES = [
  'analytics',
  'personalization',
  'marketing_email',
  'marketing_sms',
] as const;

export const Purpose = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'purpose must be snake_case');

/** The event type of a consent statement a consent-management platform sent (`POST /v1/consents`). */
export const CONSENT_STATED = 'consent.stated';

/** The most purposes one statement may name. */
const MAX_PURPOSES = 64;

/**
 * One consent statement as a consent-management platform (OneTrust, Usercentrics,
 * a preference centre) sends it to `POST /v1/consents`: whose (an identifier
 * in the clear, which ingest normalises, hashes and seals), which purposes,
 * and when. Purposes must be among the deployment's (`TANDEM_CONSENT_PURPOSES`);
 * ingest checks that, since the list is configuration.
 */
export const ConsentStatement = z
  .strictObject({
    identifier: pii(
      z
        .string()
        .max(320)
        .regex(
          /^[a-z][a-z0-9_]{0,31}:./s,
          'must be TYPE:VALUE, e.g. email:ana@example.com, phone:+8613800138000, member_id:M-1',
        ),
      'free_text',
    ).describe(
      'Whose consent: TYPE:VALUE, e.g. `email:ana@example.com`, `phone:+8613800138000`, `member_id:M-1`, `user_id:u-42`. Normalised and hashed for matching; the value itself is sealed, never stored in the clear.',
    ),
    purposes: z
      .record(Purpose, z.boolean())
      .refine((purposes) => Object.keys(purposes).length > 0, 'name at least one purpose')
      .refine(
        (purposes) => Object.keys(purposes).length <= MAX_PURPOSES,
        `name at most ${MAX_PURPOSES} purposes`,
      )
      .describe(
        'Purpose → granted (`true`) or withdrawn (`false`); purposes left out keep their state',
      ),
    occurredAt: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('When the person stated it (ISO 8601); when it was received if left out'),
    statementId: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .describe(
        "The platform's id of the statement: sent again for the same identifier, it is stored once",
      ),
    source: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'must be a lower-case label such as onetrust')
      .optional()
      .describe('Which platform or form it came from, e.g. `onetrust`, `preference_center`'),
  })
  .describe('A consent statement');
export type ConsentStatement = z.infer<typeof ConsentStatement>;

/**
 * A consent statement as a consent-management platform or a store sends it:
 * who (an identifier in plain form; Tandem hashes it), which purposes, where
 * and when. The latest statement per purpose wins.
 */
export const ConsentRecord = z.strictObject({
  subject: z.strictObject({
    type: BuiltInIdentifierType,
    value: pii(z.string().min(1).max(320), 'free_text'),
  }),
  purposes: z
    .record(Purpose, z.boolean())
    .refine((purposes) => Object.keys(purposes).length > 0, 'name at least one purpose'),
  source: z.enum(['web_banner', 'app_prompt', 'in_store_signup', 'preference_center', 'api']),
  storeId: z.string().min(1).max(128).optional(),
  occurredAt: z.iso.datetime({ offset: true }),
});
export type ConsentRecord = z.infer<typeof ConsentRecord>;

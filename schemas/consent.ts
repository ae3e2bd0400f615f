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

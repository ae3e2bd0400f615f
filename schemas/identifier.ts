import { z } from 'zod';

/**
 * Identifier types Tandem knows out of the box. Deployments may configure
 * more (any snake_case name), so the envelope accepts any well-formed type.
 */
export const BUILT_IN_IDENTIFIER_TYPES = [
  'anonymous_id',
  'user_id',
  'email',
  'phone',
  'member_id',
  'payment_token',
] as const;

export const BuiltInIdentifierType = z.enum(BUILT_IN_IDENTIFIER_TYPES);
export type BuiltInIdentifierType = z.infer<typeof BuiltInIdentifierType>;

export const IdentifierType = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]{0,31}$/,
    'identifier type must be snake_case, 1-32 characters, starting with a letter',
  );
export type IdentifierType = z.infer<typeof IdentifierType>;

/**
 * A keyed hash of a normalised identifier value: HMAC-SHA-256 under the
 * deployment's hash secret, base64url without padding (43 characters).
 * Raw values never reach the log (invariant 4).
 */
export const IdentifierHash = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, 'identifier hash must be a base64url HMAC-SHA-256 (43 characters)');

export const Identifier = z.strictObject({
  type: IdentifierType,
  hash: IdentifierHash,
  /** Set by ingest when the value is a placeholder the identity rules say never links ("guest", "0"). */
  neverLink: z.literal(true).optional(),
});
export type Identifier = z.infer<typeof Identifier>;

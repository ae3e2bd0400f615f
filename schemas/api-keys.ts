import { z } from 'zod';

/**
 * Who may do what. `admin` may do everything; the others see what their work
 * needs: marketers segments and consenting contacts, analysts SQL over the
 * pseudonymous tables, privacy officers people's data and its erasure.
 */
export const Role = z.enum(['admin', 'marketer', 'analyst', 'privacy_officer']);
export type Role = z.infer<typeof Role>;
export const ROLES = Role.options;

/** A key's id: public, part of the token, safe to log. */
export const KeyId = z
  .string()
  .regex(/^key_[0-9a-z]{12}$/, 'must be a key id such as key_0a1b2c3d4e5f');

/**
 * What a key is for: an API key carries roles (Bearer auth on the query API);
 * a write key names the source its events come from (the tracking and POS API).
 */
export const KeyGrant = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('api'), roles: z.array(Role).min(1) }),
  z.strictObject({
    kind: z.literal('write'),
    sourceId: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a source id such as web-shop'),
  }),
]);
export type KeyGrant = z.infer<typeof KeyGrant>;

export const KeyEventTypes = { created: 'key.created', revoked: 'key.revoked' } as const;

/** A key was made. Only the SHA-256 digest of its secret is kept: the secret was shown once. */
export const KeyCreated = z.strictObject({
  type: z.literal(KeyEventTypes.created),
  keyId: KeyId,
  name: z.string().min(1).max(128),
  grant: KeyGrant,
  /** base64url SHA-256 of the secret part of the token. */
  digest: z.string().length(43),
  /** The key that made it, or `cli` for `tandem keys create`. */
  createdBy: z.string(),
  at: z.iso.datetime(),
});

/** A key stopped working. */
export const KeyRevoked = z.strictObject({
  type: z.literal(KeyEventTypes.revoked),
  keyId: KeyId,
  revokedBy: z.string(),
  at: z.iso.datetime(),
});

export const KeyEvent = z.discriminatedUnion('type', [KeyCreated, KeyRevoked]);
export type KeyEvent = z.infer<typeof KeyEvent>;

/**
 * The stream of every key's life: one stream, so the registry is one small
 * fold and the audit trail of who could do what, when, is read in one pass.
 */
export const KEYS_STREAM = 'tandem-keys';

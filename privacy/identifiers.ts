/**
 * Identifier values as matching sees them: normalised, then hashed with a
 * keyed HMAC, so the same person's email typed in two shapes is one
 * identifier, and no raw value ever reaches the log (invariant 4).
 */
import { createHmac } from 'node:crypto';
import { ErrorCodes, TandemError } from '../schemas/errors.js';
import type { Identifier } from '../schemas/identifier.js';

export interface NormaliseOptions {
  /** Country calling code for phone numbers written without one, e.g. `+86`. */
  readonly defaultCountryCode?: string | undefined;
  /** Placeholder values that must never link profiles (the identity rules' `neverLink`). */
  readonly neverLink?: ((type: string, normalised: string) => boolean) | undefined;
}

/** Why a raw value is not an identifier; ingest reports it with the field's path. */
export type NormaliseFailure = { readonly ok: false; readonly reason: string };
export type Normalised = { readonly ok: true; readonly value: string } | NormaliseFailure;

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * The canonical form of a value: emails trimmed and lower-cased; phones in
 * E.164 (`+8613812345678`), using the default country code when the number
 * has none; other types trimmed, case kept.
 */
export function normaliseIdentifier(
  type: string,
  raw: string,
  options: NormaliseOptions = {},
): Normalised {
  const value = raw.normalize('NFKC').trim();
  if (value.length === 0) return { ok: false, reason: 'is empty' };
  switch (type) {
    case 'email': {
      const email = value.toLowerCase();
      return EMAIL.test(email)
        ? { ok: true, value: email }
        : { ok: false, reason: 'is not an email address' };
    }
    case 'phone':
      return normalisePhone(value, options.defaultCountryCode);
    default:
      return value.length <= 256
        ? { ok: true, value }
        : { ok: false, reason: 'is longer than 256 characters' };
  }
}

function normalisePhone(value: string, defaultCountryCode: string | undefined): Normalised {
  if (/[^\d\s()+.-]/.test(value))
    return { ok: false, reason: 'has characters a phone number cannot have' };
  const digits = value.replace(/\D/g, '');
  let e164: string;
  if (value.startsWith('+')) e164 = `+${digits}`;
  else if (value.startsWith('00')) e164 = `+${digits.slice(2)}`;
  else if (defaultCountryCode) e164 = `${defaultCountryCode}${digits.replace(/^0/, '')}`;
  else
    return { ok: false, reason: 'has no country code and no default country code is configured' };
  return /^\+[1-9]\d{6,14}$/.test(e164)
    ? { ok: true, value: e164 }
    : { ok: false, reason: 'is not a valid international phone number' };
}

/**
 * Keyed hashes of normalised identifiers (HMAC-SHA-256, base64url). Recent
 * results are remembered: a device's id recurs in every call of its batch.
 */
export class IdentifierHasher {
  private readonly recent = new Map<string, Identifier>();

  constructor(
    private readonly secret: Buffer,
    private readonly cacheSize = 50_000,
  ) {
    if (secret.length < 32) throw new Error('the hash secret must be at least 32 bytes');
  }

  /** The hash of an already normalised value; the type is part of the input, so equal values of two types differ. */
  hash(type: string, normalised: string): Identifier {
    const input = `${type}\u0000${normalised}`;
    const known = this.recent.get(input);
    if (known) return known;
    const identifier = {
      type,
      hash: createHmac('sha256', this.secret).update(input).digest('base64url'),
    };
    // A full cache starts over: simpler than LRU, and the next batch refills what it needs.
    if (this.recent.size >= this.cacheSize) this.recent.clear();
    this.recent.set(input, identifier);
    return identifier;
  }
}

/**
 * `email:ana@example.com` → the identifier as matching knows it: the value
 * normalised, then hashed. Callers never handle hashes. Throws a validation
 * error that says what is wrong with the text.
 */
export function identifierFromText(
  text: string,
  hasher: IdentifierHasher,
  options: NormaliseOptions = {},
): Identifier {
  const colon = text.indexOf(':');
  const type = text.slice(0, colon);
  if (colon < 1 || !/^[a-z][a-z0-9_]{0,31}$/.test(type))
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `"${text.slice(0, 40)}" is not TYPE:VALUE (e.g. email:ana@example.com, member_id:M-1)`,
    );
  const normalised = normaliseIdentifier(type, text.slice(colon + 1), options);
  if (!normalised.ok)
    throw new TandemError(ErrorCodes.VALIDATION, `the ${type} value ${normalised.reason}`);
  return hasher.hash(type, normalised.value);
}

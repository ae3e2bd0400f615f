import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatPhone, phoneFor } from '../fixtures/identifiers.js';
import { LOCALES } from '../fixtures/locales.js';
import { Identifier } from '../schemas/identifier.js';
import { IdentifierHasher, normaliseIdentifier } from './identifiers.js';

const value = (result: ReturnType<typeof normaliseIdentifier>) =>
  result.ok ? result.value : `error: ${result.reason}`;

describe(normaliseIdentifier.name, () => {
  it('trims and lower-cases emails, and refuses what is not one', () => {
    expect(value(normaliseIdentifier('email', '  Ana.Li@Example.COM '))).toBe('ana.li@example.com');
    expect(value(normaliseIdentifier('email', 'ana at example'))).toBe(
      'error: is not an email address',
    );
    expect(value(normaliseIdentifier('email', '   '))).toBe('error: is empty');
  });

  it('writes phones in E.164, using the default country code for national numbers', () => {
    const cn = { defaultCountryCode: '+86' };
    for (const written of [
      '13812345678',
      '138 1234 5678',
      '138-1234-5678',
      '+86 138 1234 5678',
      '0086 13812345678',
    ]) {
      expect(value(normaliseIdentifier('phone', written, cn))).toBe('+8613812345678');
    }
    expect(value(normaliseIdentifier('phone', '13812345678'))).toMatch(/no default country code/);
    expect(value(normaliseIdentifier('phone', 'call me', cn))).toMatch(/cannot have/);
    expect(value(normaliseIdentifier('phone', '+1 23', cn))).toMatch(/not a valid/);
  });

  for (const [name, locale] of Object.entries(LOCALES)) {
    it(`${name}: every way the generator writes a phone normalises to the same E.164 number`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.nat(3), (person, style) => {
          const phone = phoneFor(person, locale);
          const result = normaliseIdentifier('phone', formatPhone(phone, locale, style), {
            defaultCountryCode: locale.countryCode,
          });
          return result.ok && result.value === `${locale.countryCode}${phone}`;
        }),
      );
    });
  }

  it('keeps the case of ids, which are case-sensitive', () => {
    expect(value(normaliseIdentifier('user_id', ' U-AbC '))).toBe('U-AbC');
  });
});

describe(IdentifierHasher.name, () => {
  const hasher = new IdentifierHasher(Buffer.alloc(32, 7));

  it('gives schema-valid keyed hashes that depend on the type, the value and the secret', () => {
    const email = hasher.hash('email', 'ana@example.com');
    expect(Identifier.parse(email)).toEqual(email);
    expect(hasher.hash('email', 'ana@example.com')).toEqual(email);
    expect(hasher.hash('user_id', 'ana@example.com').hash).not.toBe(email.hash);
    expect(
      new IdentifierHasher(Buffer.alloc(32, 8)).hash('email', 'ana@example.com').hash,
    ).not.toBe(email.hash);
    expect(email.hash).not.toContain('ana');
  });

  it('refuses a short secret', () => {
    expect(() => new IdentifierHasher(Buffer.alloc(16))).toThrow(/at least 32 bytes/);
  });
});

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SealedPii } from '../schemas/envelope.js';
import { seal, unseal } from './seal.js';

describe(seal.name, () => {
  const key = { id: 'k-1', key: randomBytes(32) };
  const pii = { email: 'ana@example.com', ip: '203.0.113.7', name: '李安娜' };

  it('seals into a schema-valid block that holds no plaintext, and unseals back', () => {
    const sealed = seal(pii, key, 'event-1');
    expect(SealedPii.parse(sealed)).toEqual(sealed);
    expect(JSON.stringify(sealed)).not.toMatch(/ana|203\.0\.113|李/);
    expect(unseal(sealed, key, 'event-1')).toEqual(pii);
  });

  it('uses a fresh IV each time', () => {
    expect(seal(pii, key, 'e').ciphertext).not.toBe(seal(pii, key, 'e').ciphertext);
  });

  it('refuses another key, another event, or a changed block', () => {
    const sealed = seal(pii, key, 'event-1');
    expect(() => unseal(sealed, { id: 'k-1', key: randomBytes(32) }, 'event-1')).toThrow();
    expect(() => unseal(sealed, key, 'event-2')).toThrow();
    const flipped = Buffer.from(sealed.ciphertext, 'base64url');
    flipped[0] = (flipped[0] as number) ^ 1;
    expect(() =>
      unseal({ ...sealed, ciphertext: flipped.toString('base64url') }, key, 'event-1'),
    ).toThrow();
    expect(() => unseal(sealed, { ...key, id: 'k-2' }, 'event-1')).toThrow(/sealed under key k-1/);
  });
});

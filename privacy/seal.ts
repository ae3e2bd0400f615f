/**
 * Sealing personal data: AES-256-GCM under the data key of one subject. The
 * key id rides in the sealed block, so unsealing finds the key — and after
 * erasure destroyed it, finds nothing: every copy of the block is noise.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import type { SealedPii } from '../schemas/envelope.js';

export interface DataKey {
  readonly id: string;
  /** 32 bytes. */
  readonly key: Buffer;
}

/** Encrypts a JSON value under the data key; `aad` binds it to its event (e.g. the event id). */
export function seal(value: unknown, dataKey: DataKey, aad: string): SealedPii {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', dataKey.key, iv);
  cipher.setAAD(Buffer.from(aad));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return {
    alg: 'A256GCM',
    keyId: dataKey.id,
    iv: iv.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
  };
}

/** Decrypts a sealed block; throws when the key or the `aad` does not match or the block was altered. */
export function unseal(sealed: SealedPii, dataKey: DataKey, aad: string): unknown {
  if (sealed.keyId !== dataKey.id)
    throw new Error(`sealed under key ${sealed.keyId}, not ${dataKey.id}`);
  const decipher = createDecipheriv(
    'aes-256-gcm',
    dataKey.key,
    Buffer.from(sealed.iv, 'base64url'),
  );
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
  const plain = Buffer.concat([
    decipher.update(Buffer.from(sealed.ciphertext, 'base64url')),
    decipher.final(),
  ]);
  return JSON.parse(plain.toString('utf8'));
}

/**
 * Random IVs drawn from a pool refilled in bulk: one call to the CSPRNG per
 * 4096 seals instead of one per seal (it was the costliest step of ingest).
 */
const IV_BYTES = 12;
const pool = Buffer.alloc(IV_BYTES * 4096);
let offset = pool.length;

function nextIv(): Buffer {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const iv = Buffer.from(pool.subarray(offset, offset + IV_BYTES));
  offset += IV_BYTES;
  return iv;
}

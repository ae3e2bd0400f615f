/**
 * Wrapping data keys under the master key: AES-256-GCM, the key id bound as
 * associated data, so a wrapped key cannot be passed off as another id's.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** iv (12) | tag (16) | ciphertext (32), with the key id as associated data. */
export function wrapKey(masterKey: Buffer, key: Buffer, id: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(id));
  const ciphertext = Buffer.concat([cipher.update(key), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

/**
 * The data key, in memory of its own: key stores cache keys by the hundred
 * thousand, and a slice of Node's shared 8 KB pool (what `Buffer.concat`
 * returns for small sizes) would keep a whole pool slab alive per key.
 */
export function unwrapKey(masterKey: Buffer, wrapped: Buffer, id: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', masterKey, wrapped.subarray(0, 12));
  decipher.setAAD(Buffer.from(id));
  decipher.setAuthTag(wrapped.subarray(12, 28));
  const plain = Buffer.concat([decipher.update(wrapped.subarray(28)), decipher.final()]);
  const key = Buffer.alloc(plain.length);
  plain.copy(key);
  plain.fill(0);
  return key;
}

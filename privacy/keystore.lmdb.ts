/**
 * The embedded key store: LMDB files beside the event log. Two databases:
 * `subjects` (subject → key id) and `keys` (key id → wrapped key). Key ids
 * are random, so a sealed block left in an old copy of the log says nothing
 * about whose it was.
 *
 * Unwrapped keys are cached in memory (bounded), since every event with
 * personal data needs one; destroying a key evicts it. A process sharing
 * these files would keep its own cache: only one process may seal and
 * unseal at a time.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { KeyStore } from './keystore.js';
import type { DataKey } from './seal.js';

export interface LmdbKeyStoreOptions {
  readonly path: string;
  /** 32 bytes; wraps every data key. */
  readonly masterKey: Buffer;
  /** How many unwrapped keys to keep in memory. */
  readonly cacheSize?: number;
}

/** Opens (creating if needed) the key store at `options.path`. */
export async function openLmdbKeyStore(options: LmdbKeyStoreOptions): Promise<KeyStore> {
  if (options.masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
  const root = open({ path: options.path, maxDbs: 4, compression: false });
  return new LmdbKeyStore(root, options.masterKey, options.cacheSize ?? 100_000);
}

class LmdbKeyStore implements KeyStore {
  private readonly subjects: Database<string, string>;
  private readonly keys: Database<Buffer, string>;
  /** subject → key, in least-recently-used order (Map keeps insertion order). */
  private readonly cache = new Map<string, DataKey>();

  constructor(
    private readonly root: RootDatabase,
    private readonly masterKey: Buffer,
    private readonly cacheSize: number,
  ) {
    this.subjects = root.openDB({ name: 'subjects' });
    this.keys = root.openDB({ name: 'keys', encoding: 'binary' });
  }

  async keyFor(subject: string): Promise<DataKey> {
    const cached = this.cache.get(subject);
    if (cached) {
      this.cache.delete(subject);
      this.cache.set(subject, cached);
      return cached;
    }
    const fresh: DataKey = { id: randomBytes(16).toString('base64url'), key: randomBytes(32) };
    // Two callers may race to create a subject's key: the transaction lets the first win.
    const id = await this.root.transaction(() => {
      const existing = this.subjects.get(subject);
      if (existing) return existing;
      this.keys.put(fresh.id, this.wrap(fresh.key, fresh.id));
      this.subjects.put(subject, fresh.id);
      return fresh.id;
    });
    await this.root.flushed;
    const key = id === fresh.id ? fresh : await this.find(id);
    if (!key) throw new Error(`key ${id} of a subject vanished while it was being read`);
    this.remember(subject, key);
    return key;
  }

  async find(keyId: string): Promise<DataKey | undefined> {
    const wrapped = this.keys.get(keyId);
    return wrapped ? { id: keyId, key: this.unwrap(wrapped, keyId) } : undefined;
  }

  async destroy(subject: string): Promise<boolean> {
    this.cache.delete(subject);
    const destroyed = await this.root.transaction(() => {
      const id = this.subjects.get(subject);
      if (!id) return false;
      this.keys.remove(id);
      this.subjects.remove(subject);
      return true;
    });
    await this.root.flushed;
    return destroyed;
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.root.close();
  }

  private remember(subject: string, key: DataKey): void {
    this.cache.set(subject, key);
    if (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }

  /** iv (12) | tag (16) | ciphertext (32), with the key id as associated data. */
  private wrap(key: Buffer, id: string): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.masterKey, iv);
    cipher.setAAD(Buffer.from(id));
    const ciphertext = Buffer.concat([cipher.update(key), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
  }

  private unwrap(wrapped: Buffer, id: string): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', this.masterKey, wrapped.subarray(0, 12));
    decipher.setAAD(Buffer.from(id));
    decipher.setAuthTag(wrapped.subarray(12, 28));
    return Buffer.concat([decipher.update(wrapped.subarray(28)), decipher.final()]);
  }
}

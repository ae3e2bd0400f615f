/**
 * The embedded key store: LMDB files beside the event log. Two databases:
 * `subject-keys` (nameDigest(subject) → key id) and `keys` (key id → wrapped
 * key). Key ids are random, so a sealed block left in an old copy of the log
 * says nothing about whose it was. Subjects are stream names, which name a
 * person: they are kept as digests, because LMDB keeps removed keys in its
 * branch pages (eventstore/lmdb-scrub.ts). A store written before (`subjects`,
 * keyed by name) moves to digests when opened.
 *
 * Destroying erases for good: each removed value is overwritten with zeros
 * first, the `keys` entries around it are re-written in a later transaction
 * (so no page keeps an old copy of the wrapped key), and the free pages are
 * overwritten (`FreePageScrubber`), so neither the subject's name nor the
 * wrapped key stays in the files.
 *
 * Unwrapped keys are cached in memory (bounded), since every event with
 * personal data needs one; destroying a key evicts it. A process sharing
 * these files would keep its own cache: only one process may seal and
 * unseal at a time.
 */
import { randomBytes } from 'node:crypto';
import { type Database, open, type RootDatabase } from 'lmdb';
import {
  assertComplete,
  FreePageScrubber,
  moveDatabase,
  nameDigest,
  removeZeroed,
  touchAround,
} from '../eventstore/lmdb-scrub.js';
import { unwrapKey, wrapKey } from './key-wrap.js';
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
  const root = open({ path: options.path, maxDbs: 6, compression: false });
  const store = new LmdbKeyStore(root, options.masterKey, options.cacheSize ?? 100_000);
  await store.moveNamesToDigests();
  return store;
}

/** Two 4 KiB pages' worth of `keys` entries on each side of a destroyed key (eventstore/lmdb-scrub.ts). */
const TOUCH_REACH_BYTES = 2 * 4096;

class LmdbKeyStore implements KeyStore {
  /** Keyed by nameDigest(subject). */
  private readonly subjects: Database<string, string>;
  private readonly keys: Database<Buffer, string>;
  private readonly scrubber: FreePageScrubber;
  /** subject → key, in least-recently-used order (Map keeps insertion order). */
  private readonly cache = new Map<string, DataKey>();

  constructor(
    private readonly root: RootDatabase,
    private readonly masterKey: Buffer,
    private readonly cacheSize: number,
  ) {
    this.subjects = root.openDB({ name: 'subject-keys' });
    this.keys = root.openDB({ name: 'keys', encoding: 'binary' });
    this.scrubber = new FreePageScrubber(root);
  }

  /** Moves a store written before digests (`subjects`, keyed by name) to `subject-keys`, then scrubs. */
  async moveNamesToDigests(): Promise<void> {
    const moved = await moveDatabase(
      this.root,
      'subjects',
      this.subjects,
      (subject: string, id) => [nameDigest(subject), id],
    );
    if (moved > 0) assertComplete(await this.scrubber.scrub(), 'moving the key store to digests');
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
    const digest = nameDigest(subject);
    const id = await this.root.transaction(() => {
      const existing = this.subjects.get(digest);
      if (existing) return existing;
      this.keys.put(fresh.id, wrapKey(this.masterKey, fresh.key, fresh.id));
      this.subjects.put(digest, fresh.id);
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
    return wrapped ? { id: keyId, key: unwrapKey(this.masterKey, wrapped, keyId) } : undefined;
  }

  async destroy(subject: string): Promise<boolean> {
    return (await this.destroyMany([subject])) === 1;
  }

  /**
   * One transaction removes the subjects and their keys, `keys` last: a page
   * it frees is reused, unzeroed, for the next page it copies, and the touch
   * that follows re-writes the `keys` pages it copied. It runs as a child
   * transaction, whose freed pages no other write in the same commit reuses.
   * Then one scrub. A destroy that finds nothing still scrubs, so a retry
   * after a failed scrub finishes the job.
   */
  async destroyMany(subjects: readonly string[]): Promise<number> {
    for (const subject of subjects) this.cache.delete(subject);
    const ids = await this.root.childTransaction(() => {
      const found: string[] = [];
      for (const digest of new Set(subjects.map(nameDigest))) {
        const id = this.subjects.get(digest);
        if (!id) continue;
        removeZeroed(this.subjects, digest);
        found.push(id);
      }
      for (const id of found) removeZeroed(this.keys, id);
      return found;
    });
    if (ids.length > 0) {
      const removed = ids.map((id) => ({ first: id, last: id }));
      await this.root.childTransaction(() => touchAround(this.keys, removed, TOUCH_REACH_BYTES));
    }
    await this.root.flushed;
    assertComplete(await this.scrubber.scrub(), 'destroying keys');
    return ids.length;
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
}

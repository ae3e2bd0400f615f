/**
 * The key store of server mode: data keys in the event log itself (KurrentDB),
 * so every ingest and API process, on any machine, seals and unseals with
 * the same keys, and an erasure's destroy reaches all of them.
 *
 * Two streams per key: `pii-subject-<nameDigest(subject)>` names the key id,
 * `pii-key-<id>` holds the key wrapped under the master key. Key ids are
 * random, so a sealed block says nothing about whose it was; subjects are
 * stream names, which name a person, so only their digests are written.
 * Two processes racing to create a subject's key both end with the first
 * one's: the subject stream is created once (`no_stream`).
 *
 * Destroying deletes both streams and asks the store to overwrite freed
 * space (`EventStore.scrub`). On KurrentDB a deleted stream's events stay
 * on disk until a scavenge (docs/operations.md): the key is gone for every
 * reader at once, from the disk at the scavenge.
 *
 * Unwrapped keys are cached for `cacheTtlMs` (a minute by default): a
 * destroy evicts them here at once, and other processes forget them within
 * that time.
 */
import { randomBytes } from 'node:crypto';
import {
  type EventStore,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
} from '../eventstore/event-store.js';
import { nameDigest } from '../eventstore/lmdb-scrub.js';
import { unwrapKey, wrapKey } from './key-wrap.js';
import type { KeyStore } from './keystore.js';
import type { DataKey } from './seal.js';

export interface LogKeyStoreOptions {
  readonly eventStore: EventStore;
  /** 32 bytes; wraps every data key. */
  readonly masterKey: Buffer;
  /** How long an unwrapped key is kept in memory; 60 s by default. */
  readonly cacheTtlMs?: number;
  /** How many unwrapped keys to keep in memory. */
  readonly cacheSize?: number;
}

const KEY_CREATED = 'data_key.created';
const SUBJECT_KEY = 'data_key.assigned';

export const subjectStream = (subject: string) => `pii-subject-${nameDigest(subject)}`;
export const keyStream = (keyId: string) => `pii-key-${keyId}`;

export function openLogKeyStore(options: LogKeyStoreOptions): KeyStore {
  if (options.masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
  return new LogKeyStore(options);
}

class LogKeyStore implements KeyStore {
  /** By subject (sealing) and by key id (unsealing); each entry expires. */
  private readonly bySubject: ExpiringCache<DataKey>;
  private readonly byId: ExpiringCache<DataKey>;

  constructor(private readonly options: LogKeyStoreOptions) {
    const ttl = options.cacheTtlMs ?? 60_000;
    const size = options.cacheSize ?? 100_000;
    this.bySubject = new ExpiringCache(ttl, size);
    this.byId = new ExpiringCache(ttl, size);
  }

  async keyFor(subject: string): Promise<DataKey> {
    const cached = this.bySubject.get(subject);
    if (cached) return cached;
    const key = (await this.assigned(subject)) ?? (await this.create(subject));
    this.bySubject.set(subject, key);
    this.byId.set(key.id, key);
    return key;
  }

  async find(keyId: string): Promise<DataKey | undefined> {
    const cached = this.byId.get(keyId);
    if (cached) return cached;
    const events = await readIfThere(this.options.eventStore, keyStream(keyId));
    const wrapped = events.find((event) => event.type === KEY_CREATED)?.data.wrapped;
    if (typeof wrapped !== 'string') return undefined;
    const key = {
      id: keyId,
      key: unwrapKey(this.options.masterKey, Buffer.from(wrapped, 'base64'), keyId),
    };
    this.byId.set(keyId, key);
    return key;
  }

  async destroy(subject: string): Promise<boolean> {
    return (await this.destroyMany([subject])) === 1;
  }

  async destroyMany(subjects: readonly string[]): Promise<number> {
    const { eventStore } = this.options;
    let destroyed = 0;
    for (const subject of new Set(subjects)) {
      this.bySubject.delete(subject);
      const keyId = await this.assignedId(subject);
      if (keyId === undefined) continue;
      this.byId.delete(keyId);
      await eventStore.deleteStream(keyStream(keyId));
      await eventStore.deleteStream(subjectStream(subject));
      destroyed++;
    }
    // A destroy that finds nothing still scrubs, so a retry after a failed scrub finishes the job.
    await eventStore.scrub();
    return destroyed;
  }

  async close(): Promise<void> {
    this.bySubject.clear();
    this.byId.clear();
  }

  private async assignedId(subject: string): Promise<string | undefined> {
    const events = await readIfThere(this.options.eventStore, subjectStream(subject));
    const keyId = events.find((event) => event.type === SUBJECT_KEY)?.data.keyId;
    return typeof keyId === 'string' ? keyId : undefined;
  }

  private async assigned(subject: string): Promise<DataKey | undefined> {
    const keyId = await this.assignedId(subject);
    if (keyId === undefined) return undefined;
    const key = await this.find(keyId);
    if (!key) throw new Error(`the data key of a subject is missing from the log (key ${keyId})`);
    return key;
  }

  /** Writes a new key, then claims the subject for it; a process that lost the race uses the winner's. */
  private async create(subject: string): Promise<DataKey> {
    const { eventStore, masterKey } = this.options;
    const fresh: DataKey = { id: randomBytes(16).toString('base64url'), key: randomBytes(32) };
    const wrapped = wrapKey(masterKey, fresh.key, fresh.id).toString('base64');
    await eventStore.append(
      keyStream(fresh.id),
      [{ id: crypto.randomUUID(), type: KEY_CREATED, data: { wrapped } }],
      { expected: 'no_stream' },
    );
    try {
      await eventStore.append(
        subjectStream(subject),
        [{ id: crypto.randomUUID(), type: SUBJECT_KEY, data: { keyId: fresh.id } }],
        { expected: 'no_stream' },
      );
      return fresh;
    } catch (error) {
      if (error instanceof StreamDeletedError)
        throw new Error(
          'this subject was erased: its data key is destroyed and no new one is made (its identifiers are suppressed)',
        );
      if (!(error instanceof WrongExpectedVersionError)) throw error;
      await eventStore.deleteStream(keyStream(fresh.id));
      const winner = await this.assigned(subject);
      if (!winner) throw error;
      return winner;
    }
  }
}

async function readIfThere(eventStore: EventStore, stream: string) {
  try {
    const events = [];
    for await (const event of eventStore.readStream(stream)) events.push(event);
    return events;
  } catch (error) {
    if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return [];
    throw error;
  }
}

/** A bounded map whose entries expire; the oldest goes first when full. */
class ExpiringCache<T> {
  private readonly entries = new Map<string, { value: T; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly size: number,
  ) {}

  get(key: string): T | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.until > Date.now()) return entry.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: T): void {
    this.entries.delete(key);
    this.entries.set(key, { value, until: Date.now() + this.ttlMs });
    if (this.entries.size > this.size) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}

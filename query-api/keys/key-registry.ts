/**
 * The keys that open the API: API keys (Bearer, with roles) and source write
 * keys (ingest), made and revoked as events in one stream and folded here.
 *
 * A token is `tdm_<key id>_<secret>` (API) or `wk_<key id>_<secret>` (write).
 * The secret is 32 random bytes shown once at creation; the log keeps only
 * its SHA-256 digest. Checking a token finds the record by its public id and
 * compares digests in constant time, so timing says nothing about the secret.
 * The bootstrap keys from the environment (`TANDEM_ADMIN_KEY`,
 * `TANDEM_WRITE_KEY`) are checked the same way and never stored.
 *
 * Keys made or revoked by another process (`tandem keys …` beside a running
 * server) are picked up by `refresh()`, which reads only what is new in the
 * stream; the server calls it every second.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { EventStore } from '../../eventstore/event-store.js';
import { followStream } from '../../eventstore/stream-follower.js';
import type { WriteKeySource, WriteKeys } from '../../ingest/write-keys.js';
import {
  KEYS_STREAM,
  type KeyEvent,
  KeyEvent as KeyEventSchema,
  KeyEventTypes,
  type KeyGrant,
  type Role,
} from '../../schemas/api-keys.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';

/** Who is calling: the key's id and name (for the audit trail) and its roles. */
export interface Principal {
  readonly keyId: string;
  readonly name: string;
  readonly roles: readonly Role[];
}

/** A key as listed: never its secret. */
export interface KeyInfo {
  readonly keyId: string;
  readonly name: string;
  readonly grant: KeyGrant;
  readonly createdBy: string;
  readonly createdAt: string;
  readonly revokedAt?: string;
  readonly revokedBy?: string;
}

interface KeyRecord extends KeyInfo {
  readonly digest: Buffer;
}

export interface Bootstrap {
  /** `TANDEM_ADMIN_KEY`: a key with every role, for a first start and tests. */
  readonly adminKey?: string | undefined;
  /** `TANDEM_WRITE_KEY` (or the generated local one) and the source it stands for. */
  readonly writeKey?: { readonly key: string; readonly sourceId: string } | undefined;
}

export interface KeyRegistry {
  /** The principal of an API token, or undefined when it is unknown or revoked. */
  authenticate(token: string): Principal | undefined;
  /** Write keys for ingest: the same registry, the `write` kind. */
  readonly writeKeys: WriteKeys;
  /** Makes a key; the token is in the answer and nowhere else. */
  create(
    input: { readonly name: string; readonly grant: KeyGrant },
    createdBy: string,
  ): Promise<{ key: KeyInfo; token: string }>;
  /** Revokes a key; throws NOT_FOUND for an unknown id, and is harmless twice. */
  revoke(keyId: string, revokedBy: string): Promise<KeyInfo>;
  /** Every key, oldest first, revoked ones included. */
  list(): readonly KeyInfo[];
  /** Reads what other processes appended since the last read. */
  refresh(): Promise<void>;
}

export const BOOTSTRAP_ADMIN_ID = 'bootstrap-admin';
const TOKEN = /^(tdm|wk)_(key_[0-9a-z]{12})_([A-Za-z0-9_-]{43})$/;

/** Opens the registry: folds the key stream once, then `refresh()` keeps it current. */
export async function openKeyRegistry(options: {
  readonly eventStore: EventStore;
  readonly bootstrap?: Bootstrap;
}): Promise<KeyRegistry> {
  const { eventStore, bootstrap = {} } = options;
  const records = new Map<string, KeyRecord>();
  const adminDigest = bootstrap.adminKey === undefined ? undefined : digest(bootstrap.adminKey);
  const bootstrapWrite = bootstrap.writeKey && {
    digest: digest(bootstrap.writeKey.key),
    sourceId: bootstrap.writeKey.sourceId,
  };

  const apply = (event: KeyEvent) => {
    if (event.type === KeyEventTypes.created) {
      records.set(event.keyId, {
        keyId: event.keyId,
        name: event.name,
        grant: event.grant,
        createdBy: event.createdBy,
        createdAt: event.at,
        digest: Buffer.from(event.digest, 'base64url'),
      });
    } else {
      const record = records.get(event.keyId);
      if (record && !record.revokedAt)
        records.set(event.keyId, { ...record, revokedAt: event.at, revokedBy: event.revokedBy });
    }
  };

  const { refresh } = followStream(eventStore, KEYS_STREAM, (event) =>
    apply(KeyEventSchema.parse(event.data)),
  );

  /** The live record a token names, when its secret matches. */
  const find = (token: string, kind: 'tdm' | 'wk'): KeyRecord | undefined => {
    const match = TOKEN.exec(token);
    if (!match || match[1] !== kind) return undefined;
    const record = records.get(match[2] as string);
    if (!record || record.revokedAt) return undefined;
    return sameDigest(digest(match[3] as string), record.digest) ? record : undefined;
  };

  const append = async (event: KeyEvent) => {
    await eventStore.append(KEYS_STREAM, [
      { id: crypto.randomUUID(), type: event.type, data: { ...event } },
    ]);
    await refresh();
  };

  await refresh();
  return {
    authenticate(token) {
      if (adminDigest && sameDigest(digest(token), adminDigest))
        return { keyId: BOOTSTRAP_ADMIN_ID, name: 'bootstrap admin key', roles: ['admin'] };
      const record = find(token, 'tdm');
      if (record?.grant.kind !== 'api') return undefined;
      return { keyId: record.keyId, name: record.name, roles: record.grant.roles };
    },
    writeKeys: {
      resolve(token): WriteKeySource | undefined {
        if (bootstrapWrite && sameDigest(digest(token), bootstrapWrite.digest))
          return { sourceId: bootstrapWrite.sourceId };
        const record = find(token, 'wk');
        return record?.grant.kind === 'write' ? { sourceId: record.grant.sourceId } : undefined;
      },
    },
    async create(input, createdBy) {
      const keyId = `key_${randomBytes(8).readBigUInt64BE().toString(36).padStart(13, '0').slice(-12)}`;
      const secret = randomBytes(32).toString('base64url');
      await append({
        type: KeyEventTypes.created,
        keyId,
        name: input.name,
        grant: input.grant,
        digest: digest(secret).toString('base64url'),
        createdBy,
        at: new Date().toISOString(),
      });
      const prefix = input.grant.kind === 'api' ? 'tdm' : 'wk';
      return { key: info(records.get(keyId) as KeyRecord), token: `${prefix}_${keyId}_${secret}` };
    },
    async revoke(keyId, revokedBy) {
      await refresh();
      const record = records.get(keyId);
      if (!record) throw new TandemError(ErrorCodes.NOT_FOUND, `no key ${keyId}`, { keyId });
      if (!record.revokedAt)
        await append({
          type: KeyEventTypes.revoked,
          keyId,
          revokedBy,
          at: new Date().toISOString(),
        });
      return info(records.get(keyId) as KeyRecord);
    },
    list: () => [...records.values()].map(info),
    refresh,
  };
}

function info({ digest: _digest, ...rest }: KeyRecord): KeyInfo {
  return rest;
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nameDigest } from '../eventstore/lmdb-scrub.js';
import type { KeyStore } from './keystore.js';
import { openLmdbKeyStore } from './keystore.lmdb.js';
import { type DataKey, seal, unseal } from './seal.js';
import { loadSecret } from './secrets.js';

describe(openLmdbKeyStore.name, () => {
  let dir: string;
  let store: KeyStore;
  const masterKey = randomBytes(32);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-keys-'));
    store = await openLmdbKeyStore({ path: dir, masterKey });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives a subject one key, the same after a reopen, and another subject another', async () => {
    const [a, again] = await Promise.all([store.keyFor('anon-1'), store.keyFor('anon-1')]);
    expect(again).toEqual(a);
    expect((await store.keyFor('anon-2')).id).not.toBe(a.id);
    await store.close();
    store = await openLmdbKeyStore({ path: dir, masterKey });
    const reread = await store.keyFor('anon-1');
    expect(reread).toEqual(a);
    expect(await store.find(a.id)).toEqual(a);
    // Its own 32 bytes, not a slice of Node's shared 8 KB pool that a cached key would keep alive.
    expect(reread.key.buffer.byteLength).toBe(32);
  });

  it('shreds: after destroy, what was sealed under the key cannot be opened, and a new key differs', async () => {
    const key = await store.keyFor('email-x');
    const sealed = seal({ email: 'ana@example.com' }, key, 'e-1');
    expect(await store.destroy('email-x')).toBe(true);
    expect(await store.destroy('email-x')).toBe(false);
    expect(await store.find(key.id)).toBeUndefined();
    const next = await store.keyFor('email-x');
    expect(next.id).not.toBe(key.id);
    expect(() => unseal(sealed, next, 'e-1')).toThrow();
  });

  it('stores keys only wrapped: the raw key bytes are not in the files', async () => {
    const key = await store.keyFor('anon-raw');
    const files = await readdir(dir);
    const contents = await Promise.all(files.map((file) => readFile(join(dir, file))));
    expect(contents.some((content) => content.includes(key.key))).toBe(false);
  });

  it('destroys for good: neither the subject nor the wrapped key stays in the files', async () => {
    const subjects = Array.from(
      { length: 600 },
      (_, i) => `email-${randomBytes(32).toString('base64url')}-${i}`,
    );
    const keys = await Promise.all(subjects.map((subject) => store.keyFor(subject)));
    await store.close();
    const wrapped = await readWrappedKeys(
      dir,
      keys.map((key) => key.id),
    );
    store = await openLmdbKeyStore({ path: dir, masterKey });
    const doomed = subjects.filter((_, i) => i % 4 === 0);
    for (const subject of doomed.slice(0, 5)) expect(await store.destroy(subject)).toBe(true);
    expect(await store.destroyMany([...doomed.slice(5), doomed[5] as string, 'never-keyed'])).toBe(
      doomed.length - 5,
    );
    await store.close();

    const files = await Promise.all((await readdir(dir)).map((file) => readFile(join(dir, file))));
    const inFiles = (needle: string | Buffer) => files.some((file) => file.includes(needle));
    subjects.forEach((subject, i) => {
      const destroyed = i % 4 === 0;
      expect(inFiles(subject)).toBe(false);
      expect(inFiles(wrapped[i] as Buffer)).toBe(!destroyed);
    });
    store = await openLmdbKeyStore({ path: dir, masterKey });
    for (const [i, subject] of subjects.entries()) {
      const key = keys[i] as DataKey;
      if (i % 4 === 0) expect(await store.find(key.id)).toBeUndefined();
      else {
        expect(await store.find(key.id)).toEqual(key);
        expect(await store.keyFor(subject)).toEqual(key);
      }
    }
  });

  it('opens a store written before digests: its keys keep their subjects, and the names leave', async () => {
    const kept = await store.keyFor('email-kept');
    const gone = await store.keyFor('email-gone');
    await store.close();
    await moveSubjectsBack(dir, ['email-kept', 'email-gone']);
    expect(
      (await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f))))).some((f) =>
        f.includes('email-kept'),
      ),
    ).toBe(true);

    store = await openLmdbKeyStore({ path: dir, masterKey });
    expect(await store.keyFor('email-kept')).toEqual(kept);
    expect(await store.destroy('email-gone')).toBe(true);
    expect(await store.find(gone.id)).toBeUndefined();
    await store.close();
    const files = await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f))));
    expect(files.some((f) => f.includes('email-kept') || f.includes('email-gone'))).toBe(false);
    store = await openLmdbKeyStore({ path: dir, masterKey });
    expect(await store.keyFor('email-kept')).toEqual(kept);
  });

  it('cannot unwrap with another master key', async () => {
    const key = await store.keyFor('anon-9');
    await store.close();
    store = await openLmdbKeyStore({ path: dir, masterKey: randomBytes(32) });
    await expect(store.find(key.id)).rejects.toThrow();
  });
});

/** The wrapped keys stored under these ids, read from the files directly. */
async function readWrappedKeys(path: string, ids: readonly string[]): Promise<Buffer[]> {
  const root = open({ path, maxDbs: 6, compression: false });
  const keys = root.openDB<Buffer, string>({ name: 'keys', encoding: 'binary' });
  const wrapped = ids.map((id) => Buffer.from(keys.getBinary(id) as Buffer));
  await root.close();
  return wrapped;
}

/** Rewrites the subjects' entries in the layout written before digests (`subjects`, keyed by name). */
async function moveSubjectsBack(path: string, subjects: readonly string[]): Promise<void> {
  const root = open({ path, maxDbs: 6, compression: false });
  const current = root.openDB<string, string>({ name: 'subject-keys' });
  const legacy = root.openDB<string, string>({ name: 'subjects' });
  await root.transaction(() => {
    for (const subject of subjects) {
      legacy.put(subject, current.get(nameDigest(subject)) as string);
      current.remove(nameDigest(subject));
    }
  });
  await root.close();
}

describe(loadSecret.name, () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-secret-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates a 0600 file on first use and reads the same secret afterwards', async () => {
    const file = join(dir, 'sub', 'master.key');
    const first = await loadSecret({ variable: 'TANDEM_MASTER_KEY', value: undefined, file });
    expect(first.generated).toBe(true);
    expect(first.secret).toHaveLength(32);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = await loadSecret({ variable: 'TANDEM_MASTER_KEY', value: undefined, file });
    expect(second).toEqual({ secret: first.secret, generated: false });
  });

  it('gives processes starting together one secret, generated by exactly one of them', async () => {
    const file = join(dir, 'hash.secret');
    const loads = await Promise.all(
      Array.from({ length: 8 }, () =>
        loadSecret({ variable: 'TANDEM_HASH_SECRET', value: undefined, file }),
      ),
    );
    expect(loads.filter((load) => load.generated)).toHaveLength(1);
    for (const load of loads) expect(load.secret).toEqual(loads[0]?.secret);
    expect(await readdir(dir)).toEqual(['hash.secret']);
  });

  it('prefers the variable, in base64 or hex, and names it when it is the wrong size', async () => {
    const secret = randomBytes(32);
    const file = join(dir, 'unused');
    expect(
      (await loadSecret({ variable: 'V', value: secret.toString('base64'), file })).secret,
    ).toEqual(secret);
    expect(
      (await loadSecret({ variable: 'V', value: secret.toString('hex'), file })).secret,
    ).toEqual(secret);
    await expect(
      loadSecret({ variable: 'TANDEM_HASH_SECRET', value: 'c2hvcnQ', file }),
    ).rejects.toThrow(/TANDEM_HASH_SECRET: must be 32 bytes/);
  });
});

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KeyStore } from './keystore.js';
import { openLmdbKeyStore } from './keystore.lmdb.js';
import { seal, unseal } from './seal.js';
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
    expect(await store.keyFor('anon-1')).toEqual(a);
    expect(await store.find(a.id)).toEqual(a);
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

  it('cannot unwrap with another master key', async () => {
    const key = await store.keyFor('anon-9');
    await store.close();
    store = await openLmdbKeyStore({ path: dir, masterKey: randomBytes(32) });
    await expect(store.find(key.id)).rejects.toThrow();
  });
});

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

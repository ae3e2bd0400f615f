/**
 * The server-mode key store and suppression list, on a real log (LMDB here;
 * the same calls run on KurrentDB). Two instances over one log stand for two
 * processes of one deployment.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventStore } from '../eventstore/event-store.js';
import { openLmdbEventStore } from '../eventstore/event-store.lmdb.js';
import { identityInput } from '../identity/fact.js';
import type { Identifier } from '../schemas/identifier.js';
import { keyStream, openLogKeyStore, subjectStream } from './keystore.log.js';
import { seal, unseal } from './seal.js';
import { openLogSuppressionList, SUPPRESSION_STREAM } from './suppression.log.js';

let dir: string;
let eventStore: EventStore;
const masterKey = randomBytes(32);
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-logkeys-'));
  eventStore = await openLmdbEventStore({ path: dir });
});
afterEach(async () => {
  await eventStore.close();
  await rm(dir, { recursive: true, force: true });
});

describe(openLogKeyStore.name, () => {
  it('gives a subject one key across processes, even when they race to create it', async () => {
    const one = openLogKeyStore({ eventStore, masterKey });
    const two = openLogKeyStore({ eventStore, masterKey });
    const keys = await Promise.all([
      one.keyFor('person-a'),
      two.keyFor('person-a'),
      one.keyFor('person-a'),
      two.keyFor('person-a'),
    ]);
    for (const key of keys) expect(key).toEqual(keys[0]);
    expect((await one.keyFor('person-b')).id).not.toBe(keys[0]?.id);
    const sealed = seal({ email: 'ana@example.com' }, keys[0] as never, 'e-1');
    const found = await openLogKeyStore({ eventStore, masterKey }).find(sealed.keyId);
    expect(unseal(sealed, found as never, 'e-1')).toEqual({ email: 'ana@example.com' });
    // The loser of the race leaves no key behind: one key stream per subject.
    const keyStreams = new Set<string>();
    for await (const event of eventStore.readAll())
      if (event.stream.startsWith('pii-key-')) keyStreams.add(event.stream);
    expect(keyStreams.size).toBe(2);
  });

  it('never writes the subject or the key in the clear, and a wrong master key opens nothing', async () => {
    const store = openLogKeyStore({ eventStore, masterKey });
    const key = await store.keyFor('person-ana-subject');
    const files = await Promise.all(
      (await readdir(dir)).map((name) => readFile(join(dir, name)).catch(() => Buffer.alloc(0))),
    );
    for (const bytes of files) {
      expect(bytes.includes('person-ana-subject')).toBe(false);
      expect(bytes.includes(key.key)).toBe(false);
    }
    const stranger = openLogKeyStore({ eventStore, masterKey: randomBytes(32) });
    await expect(stranger.find(key.id)).rejects.toThrow();
  });

  it('shreds for every process: after destroy no process finds the key, its streams are gone, and the subject gets no new key', async () => {
    const one = openLogKeyStore({ eventStore, masterKey });
    const two = openLogKeyStore({ eventStore, masterKey, cacheTtlMs: 0 });
    const key = await one.keyFor('person-x');
    expect(await two.find(key.id)).toEqual(key);
    expect(await one.destroyMany(['person-x', 'person-x', 'person-never'])).toBe(1);
    expect(await one.find(key.id)).toBeUndefined();
    expect(await two.find(key.id)).toBeUndefined();
    expect(await one.destroy('person-x')).toBe(false);
    for (const stream of [keyStream(key.id), subjectStream('person-x')])
      await expect(async () => {
        for await (const _ of eventStore.readStream(stream));
      }).rejects.toThrow();
    await expect(two.keyFor('person-x')).rejects.toThrow(/erased/);
  });
});

describe(openLogSuppressionList.name, () => {
  const email = (hash: string): Identifier => ({ type: 'email', hash }) as Identifier;

  it('is shared: what one process suppresses, another refuses within moments, and a restart reads it back', async () => {
    const one = await openLogSuppressionList({ eventStore });
    const two = await openLogSuppressionList({ eventStore });
    try {
      await one.add([email('h1'), email('h2')]);
      expect(one.has(email('h1'))).toBe(true);
      await until(() => two.has(email('h1')) && two.has(email('h2')));
      await two.remove([email('h1')]);
      await until(() => !one.has(email('h1')));
      expect(one.has(email('h2'))).toBe(true);
      // The resolver must not read a suppression as a fact linking the hashes into a profile.
      for await (const event of eventStore.readStream(SUPPRESSION_STREAM))
        expect(identityInput(event)).toBeUndefined();
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
    const restarted = await openLogSuppressionList({ eventStore });
    try {
      expect(restarted.has(email('h1'))).toBe(false);
      expect(restarted.has(email('h2'))).toBe(true);
      expect(restarted.has({ type: 'phone', hash: 'h2' } as Identifier)).toBe(false);
    } finally {
      await restarted.close();
    }
  });
});

async function until(holds: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!holds()) {
    if (Date.now() > deadline) throw new Error('the condition did not hold in time');
    await sleep(20);
  }
}

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { describeEventStoreContract } from './event-store.contract.js';
import { type EventData, type EventStore, StreamDeletedError } from './event-store.js';
import { openLmdbEventStore } from './event-store.lmdb.js';
import { RecordCodec } from './event-store.lmdb.records.js';
import { appenderChild, collect, makeEvents } from './testing/helpers.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tandem-lmdb-'));
}

describeEventStoreContract(
  'lmdb',
  async () => {
    const dir = await tempDir();
    return {
      spec: { kind: 'lmdb', path: dir, maxAppendBytes: 1024 * 1024 },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { removalsLeaveAll: true, largeEventBytes: 768 * 1024 },
);

describe(openLmdbEventStore.name, () => {
  const opened: EventStore[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });
  async function openFresh(dir?: string) {
    const path = dir ?? (await tempDir());
    if (!dir) dirs.push(path);
    const store = await openLmdbEventStore({ path });
    opened.push(store);
    return { store, path };
  }

  it('keeps events across close and reopen', async () => {
    const { store, path } = await openFresh();
    const events = makeEvents(5);
    await store.append('orders-1', events);
    await store.close();
    const { store: reopened } = await openFresh(path);
    expect((await collect(reopened.readStream('orders-1'))).map((event) => event.id)).toEqual(
      events.map((event) => event.id),
    );
  });

  it('never reuses a position, even after the newest events are deleted', async () => {
    const { store } = await openFresh();
    await store.append('a', makeEvents(2));
    const doomed = await store.append('b', makeEvents(2));
    await store.deleteStream('b');
    const next = await store.append('c', makeEvents(1));
    expect(next.position.commit).toBeGreaterThan(doomed.position.commit);
  });

  it('takes the same event id again after its stream was deleted (erasure leaves no trace of it)', async () => {
    const { store } = await openFresh();
    const events = makeEvents(2);
    await store.append('person-1', events);
    await store.deleteStream('person-1');
    await expect(store.append('person-2', events)).resolves.toMatchObject({
      nextExpectedRevision: 1,
    });
  });

  it('refuses an event id that another stream already holds', async () => {
    const { store } = await openFresh();
    const events = makeEvents(1);
    await store.append('one', events);
    await expect(store.append('two', events)).rejects.toMatchObject({
      code: 'TANDEM_ERR_IDEMPOTENCY_CONFLICT',
    });
  });

  it('wakes a subscriber when another process appends to the same files', async () => {
    const { store, path } = await openFresh();
    await store.append('warm-up', makeEvents(1));
    const controller = new AbortController();
    const received: string[] = [];
    const consumer = (async () => {
      for await (const event of store.subscribeAll({ from: 'end', signal: controller.signal })) {
        received.push(event.stream);
        if (received.length === 10) controller.abort();
      }
    })();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', appenderChild, JSON.stringify({ kind: 'lmdb', path }), 'from-child'],
      { stdio: 'ignore' },
    );
    try {
      await consumer;
    } finally {
      child.kill('SIGKILL');
    }
    expect(received).toEqual(Array(10).fill('from-child'));
  });

  it('serialises appends of several processes to one stream: no lost, doubled or reordered events', async () => {
    const { store, path } = await openFresh();
    const spec = JSON.stringify({ kind: 'lmdb', path });
    const children = [1, 2, 3].map(() =>
      spawn(
        process.execPath,
        ['--import', 'tsx', appenderChild, spec, 'contended', '5', 'contend:30'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const exits = children.map(exitOf);
    const acked = await Promise.all(
      children.map(async (child) => {
        const ids: string[] = [];
        for await (const line of createInterface({ input: child.stdout }))
          ids.push(...(line.split(' ')[2] ?? '').split(','));
        return ids;
      }),
    );
    // A child that died (a crash in the store) fails here, with what it printed.
    expect(await Promise.all(exits)).toEqual([1, 2, 3].map(() => 'exit 0'));
    const stored = await collect(store.readStream('contended'));
    expect(stored).toHaveLength(3 * 30 * 5);
    expect(stored.map((event) => event.revision)).toEqual(stored.map((_, i) => i));
    expect(new Set(stored.map((event) => event.id))).toEqual(new Set(acked.flat()));
    const positions = stored.map((event) => event.position.commit);
    expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : 1)));
  }, 60_000);

  it('rejects use after close with a clear error', async () => {
    const { store } = await openFresh();
    await store.close();
    await expect(store.append('x', makeEvents(1))).rejects.toMatchObject({
      code: 'TANDEM_ERR_STORE_CLOSED',
    });
  });

  it('ends live subscriptions when the store closes', async () => {
    const { store } = await openFresh();
    const consumer = collect(store.subscribeAll({ from: 'end' }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await store.close();
    await expect(consumer).resolves.toEqual([]);
  });

  it('lets the rest of the process run during a long read (LMDB reads are synchronous)', async () => {
    const { store } = await openFresh();
    for (let i = 0; i < 10; i++) await store.append(`s-${i}`, makeEvents(500));
    // Counts turns of the event loop: each turn runs it once.
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    try {
      let read = 0;
      for await (const _ of store.readAll()) read++;
      expect(read).toBe(5000);
      // A turn between pages of 512: a server keeps answering during the scan.
      expect(turns).toBeGreaterThanOrEqual(9);
    } finally {
      ticking = false;
    }
  });

  it('forgets the retry records of truncated appends: re-appending them appends again', async () => {
    const { store } = await openFresh();
    const [a, b, c] = [makeEvents(3), makeEvents(3), makeEvents(2)];
    for (const events of [a, b, c]) await store.append('retention-1', events);
    // Removes all of a and the first event of b.
    expect(await store.truncateBefore('retention-1', 4)).toBe(4);
    const retryOfC = await store.append('retention-1', c);
    expect(retryOfC.nextExpectedRevision).toBe(7);
    expect((await store.append('retention-1', a)).nextExpectedRevision).toBe(10);
    expect((await store.append('retention-1', b)).nextExpectedRevision).toBe(13);
    const read = await collect(store.readStream('retention-1'));
    expect(read.map((event) => event.id)).toEqual(
      [...b.slice(1), ...c, ...a, ...b].map((event) => event.id),
    );
  });

  it('moves the head back when the newest events are truncated, and never reuses their positions', async () => {
    const { store } = await openFresh();
    const kept = await store.append('a', makeEvents(2));
    const truncated = await store.append('b', makeEvents(3));
    expect(await store.truncateBefore('b', 10)).toBe(3);
    expect(await store.headPosition()).toEqual(kept.position);
    const next = await store.append('b', makeEvents(1), { expected: 2 });
    expect(next.position.commit).toBeGreaterThan(truncated.position.commit);
    expect(next.nextExpectedRevision).toBe(3);
  });

  it('writes the payload into the LMDB data file, and deletion removes it from every read', async () => {
    const { store, path } = await openFresh();
    const marker = `marker-${randomUUID()}`;
    await store.append('pii-1', [{ id: randomUUID(), type: 'probe', data: { marker } }]);
    const files = await readdir(path);
    const contents = await Promise.all(files.map((file) => readFile(join(path, file))));
    expect(contents.some((content) => content.includes(marker))).toBe(true);
    await store.deleteStream('pii-1');
    const all = await collect(store.readAll());
    expect(all.some((event) => JSON.stringify(event.data).includes(marker))).toBe(false);
  });
});

describe('erasure from the LMDB files', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /** An identifier hash as erasure sees them: 43 base64url characters. */
  const identifierHash = () => randomBytes(32).toString('base64url');
  /** Events whose data carries `hash`; every `bigEvery`-th one over 4 KB, so on overflow pages. */
  const eventsOf = (hash: string, count: number, bigEvery = 0): EventData[] =>
    makeEvents(count).map((event, i) => ({
      ...event,
      data: {
        identifiers: [hash],
        page: `https://shop.example/p/${i}`,
        ...(bigEvery && i % bigEvery === 0 ? { blob: 'b'.repeat(6000) } : {}),
      },
    }));

  it('leaves no byte of a deleted stream in any file after scrub, and keeps every other stream', async () => {
    const path = await tempDir();
    dirs.push(path);
    let store = await openLmdbEventStore({ path });
    const doomed = Array.from({ length: 3 }, () => identifierHash());
    const kept = Array.from({ length: 600 }, () => identifierHash());
    const keptEvents = new Map<string, EventData[]>(kept.map((hash) => [hash, []]));
    // Interleaved appends, so the doomed events sit between others in every database,
    // and enough streams that the indexes have branch pages.
    for (let round = 0; round < 3; round++) {
      await Promise.all([
        ...kept.map((hash, i) => {
          const events = eventsOf(hash, 1 + (i % 3), i % 50 === 0 ? 1 : 0);
          keptEvents.get(hash)?.push(...events);
          return store.append(`email-${hash}`, events);
        }),
        ...doomed.flatMap((hash) =>
          [1, 4, 2].map(() => store.append(`email-${hash}`, eventsOf(hash, 3, 2))),
        ),
      ]);
    }
    for (const hash of doomed) {
      expect(await occurrences(path, hash)).toBeGreaterThan(0);
      await store.deleteStream(`email-${hash}`);
    }
    await store.scrub();
    await store.close();

    for (const hash of doomed) expect(await occurrences(path, hash)).toBe(0);
    store = await openLmdbEventStore({ path });
    try {
      for (const hash of doomed) {
        await expect(collect(store.readStream(`email-${hash}`))).rejects.toBeInstanceOf(
          StreamDeletedError,
        );
        await expect(
          store.append(`email-${hash}`, makeEvents(1), { expected: 'no_stream' }),
        ).rejects.toBeInstanceOf(StreamDeletedError);
      }
      for (const [hash, events] of keptEvents) {
        const read = await collect(store.readStream(`email-${hash}`));
        expect(read.map((event) => [event.id, event.data])).toEqual(
          events.map((event) => [event.id, event.data]),
        );
      }
    } finally {
      await store.close();
    }
  }, 60_000);

  it('leaves no byte of truncated events in any file after scrub, and keeps every other event', async () => {
    const path = await tempDir();
    dirs.push(path);
    let store = await openLmdbEventStore({ path });
    // Every event carries its own hash, so the byte search tells each removed event
    // from each kept one. 300 streams, interleaved appends of 1 to 5 events (some
    // over 4 KB), then each stream truncated at its own point: removed runs sit
    // beside kept events everywhere in the log.
    const streams = Array.from({ length: 300 }, () => ({
      name: `email-${identifierHash()}`,
      events: [] as EventData[],
    }));
    for (let round = 0; round < 4; round++) {
      await Promise.all(
        streams.map((stream, i) => {
          const events = Array.from({ length: 1 + ((i * 7 + round * 3) % 5) }, (_, j) => {
            const [event] = eventsOf(identifierHash(), 1, (i + j + round) % 25 === 0 ? 1 : 0);
            return event as EventData;
          });
          stream.events.push(...events);
          return store.append(stream.name, events);
        }),
      );
    }
    const cuts = streams.map((stream, i) => (i * 13) % (stream.events.length + 2));
    for (const [i, stream] of streams.entries()) {
      const cut = cuts[i] as number;
      expect(await store.truncateBefore(stream.name, cut)).toBe(
        Math.min(cut, stream.events.length),
      );
    }
    await store.scrub();
    await store.close();

    const hashOf = (event: EventData) => (event.data.identifiers as string[])[0] as string;
    const removed = streams.flatMap((stream, i) => stream.events.slice(0, cuts[i]).map(hashOf));
    const kept = streams.flatMap((stream, i) => stream.events.slice(cuts[i]).map(hashOf));
    const found = await hashesIn(path);
    expect(removed.length).toBeGreaterThan(500);
    expect(removed.filter((hash) => found.has(hash))).toEqual([]);
    expect(kept.filter((hash) => !found.has(hash))).toEqual([]);

    store = await openLmdbEventStore({ path });
    try {
      for (const [i, stream] of streams.entries()) {
        const cut = Math.min(cuts[i] as number, stream.events.length);
        const read = await collect(store.readStream(stream.name));
        expect(read.map((event) => [event.revision, event.id])).toEqual(
          stream.events.slice(cut).map((event, j) => [cut + j, event.id]),
        );
      }
      expect(await collect(store.readAll())).toHaveLength(kept.length);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('opens a store written before digests: streams, tombstones and retries keep working, and the names leave', async () => {
    const path = await tempDir();
    dirs.push(path);
    const live = `email-${identifierHash()}`;
    const gone = `email-${identifierHash()}`;
    const events = makeEvents(2);
    await writeLegacyStore(path, live, events, gone);
    expect(await occurrences(path, gone)).toBeGreaterThan(0);

    const store = await openLmdbEventStore({ path });
    try {
      expect((await collect(store.readStream(live))).map((event) => event.id)).toEqual(
        events.map((event) => event.id),
      );
      await expect(collect(store.readStream(gone))).rejects.toBeInstanceOf(StreamDeletedError);
      await expect(store.append(gone, makeEvents(1))).rejects.toBeInstanceOf(StreamDeletedError);
      const retry = await store.append(live, events, { expected: 'no_stream' });
      expect(retry.nextExpectedRevision).toBe(1);
      expect((await store.append(live, makeEvents(1), { expected: 1 })).nextExpectedRevision).toBe(
        2,
      );
    } finally {
      await store.close();
    }
    expect(await occurrences(path, gone)).toBe(0);
    const reopened = await openLmdbEventStore({ path });
    await expect(collect(reopened.readStream(live))).resolves.toHaveLength(3);
    await reopened.close();
  });
});

/** Every identifier hash (43 base64url characters, as `identifierHash` makes) in a JSON string in the files of `dir`. */
async function hashesIn(dir: string): Promise<Set<string>> {
  const found = new Set<string>();
  for (const file of await readdir(dir)) {
    const text = (await readFile(join(dir, file))).toString('latin1');
    for (const match of text.matchAll(/[A-Za-z0-9_-]{43}/g)) found.add(match[0]);
  }
  return found;
}

/** How often `needle` occurs in all the files of `dir`. */
async function occurrences(dir: string, needle: string): Promise<number> {
  let count = 0;
  for (const file of await readdir(dir)) {
    const content = await readFile(join(dir, file));
    for (let at = content.indexOf(needle); at >= 0; at = content.indexOf(needle, at + 1)) count++;
  }
  return count;
}

/** The layout the adapter wrote before digests: one live stream of `events`, one tombstone. */
async function writeLegacyStore(path: string, live: string, events: EventData[], gone: string) {
  const root = open({ path, maxDbs: 8, compression: false });
  const log = root.openDB<Buffer, number>({ name: 'log', encoding: 'binary' });
  const segments = root.openDB<[number, number, string], [string, number]>({ name: 'segments' });
  const appends = root.openDB<[string, number], string>({ name: 'appends' });
  const streams = root.openDB<[number, 0 | 1], string>({ name: 'streams' });
  const meta = root.openDB<number, string>({ name: 'meta', encoding: 'ordered-binary' });
  const codec = new RecordCodec();
  const ids = events.map((event) => event.id.toLowerCase());
  await root.transaction(() => {
    events.forEach((event, i) => {
      const body = codec.body(event, ids[i] as string, Date.now());
      log.put(i + 1, codec.record(codec.header(live), i, body));
    });
    segments.put([live, 0], [1, events.length, ids[0] as string]);
    appends.put(ids[0] as string, [live, 0]);
    streams.put(live, [events.length - 1, 0]);
    streams.put(gone, [4, 1]);
    meta.put('head', events.length + 5);
  });
  await root.close();
}

/** How a child ended: `exit 0`, or its code or signal with the end of its stderr. */
async function exitOf(child: ChildProcess): Promise<string> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  return code === 0 ? 'exit 0' : `${signal ?? `exit ${code}`}: ${stderr}`;
}

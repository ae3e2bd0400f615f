/**
 * Making what an LMDB store deletes leave its files, for erasure. LMDB
 * overwrites nothing it deletes. Measured on lmdb-js 3.5.6 (random histories
 * of appends and deletions, byte-searched afterwards), old bytes stay in:
 *
 * 1. Free pages. A freed page keeps its content until LMDB reuses it.
 *    `FreePageScrubber` makes LMDB reuse every free page for zero filler.
 * 2. The gaps of live pages. A page has its nodes at both ends and free space
 *    between, and LMDB never clears that space: a removed node's bytes stay
 *    there, and so do stale copies of live nodes a split or a rebalance moved
 *    to another page. Within one transaction, a page it freed is reused for
 *    the next page it copies without being cleared, so that page's bytes land
 *    in the gap of another page. But a page changed in a later transaction is
 *    copied with only its used parts, into cleared memory. So the store:
 *    - removes with `removeZeroed`: the value is overwritten with zeros of its
 *      own length (LMDB rewrites a same-size value in place) before it goes,
 *      so no gap gets the removed value itself;
 *    - then, in a later transaction, re-writes the entries around what it
 *      removed (`touchAround`), two pages' worth on each side: that copies
 *      the pages it removed from, the neighbours they rebalanced with, and
 *      the page a split left stale copies in. Re-writing only the nearest
 *      neighbour leaked in 30 of 30 random histories (scratch/touch-fuzz.ts
 *      when measured); the nearest eight, in 7 of 20; the event store as it
 *      is now leaked in none of 268 (erase-fuzz.ts: up to 800 streams,
 *      deletions alone and racing appends);
 *    - removes the entries of the database whose bytes matter last in the
 *      transaction, so freed pages are reused only for pages the touch then
 *      re-writes, and in a child transaction, whose freed pages no other
 *      write of the same commit reuses.
 *    Databases whose entries say nothing about a person need no touch.
 * 3. Branch pages. A branch page keeps, as the separator before a child, the
 *    first key that child had when it was split, even after that key is
 *    removed (40 of 300 deleted stream names stayed so in a store of 3,000
 *    streams). So no key may name a person: where a key would hold a stream
 *    or subject name, it holds `nameDigest(name)`; `moveDatabase` moves a
 *    store written before to such keys.
 *
 * Keys stay behind in gaps and separators, so keys must say nothing about a
 * person: positions, random ids and digests do not.
 */
import { createHash } from 'node:crypto';
import {
  asBinary,
  type Database,
  type DatabaseOptions,
  type Key,
  type RangeOptions,
  type RootDatabase,
} from 'lmdb';
import { ErrorCodes, TandemError } from '../schemas/errors.js';

/** The key that stands for a stream or subject name: SHA-256 of the name, base64url. */
export function nameDigest(name: string): string {
  return createHash('sha256').update(name).digest('base64url');
}

let zeros = Buffer.alloc(64 * 1024);

/**
 * Removes `key` from `db` inside the caller's write transaction, overwriting
 * its value with zeros of the same length first (2. above). True when it
 * existed.
 */
export function removeZeroed<V, K extends Key>(db: Database<V, K>, key: K): boolean {
  const length = db.getBinaryFast(key)?.length;
  if (length === undefined) return false;
  if (length > zeros.length) zeros = Buffer.alloc(length);
  db.put(key, asBinary(zeros.subarray(0, length)) as V);
  db.remove(key);
  return true;
}

/**
 * Re-writes, unchanged, the entries beside each removed range of keys; run it
 * in a write transaction after the one that removed them, so LMDB copies each
 * page they sit in (2. above). `reach` is how far to go on each side, in bytes
 * of values. Returns how many entries it re-wrote.
 */
export function touchAround<V, K extends Key>(
  db: Database<V, K>,
  removed: Iterable<{ readonly first: K; readonly last: K }>,
  reach: number,
): number {
  const touched = new Map<string, K>();
  const walk = (options: RangeOptions) => {
    let bytes = 0;
    for (const key of db.getKeys(options)) {
      touched.set(JSON.stringify(key), key);
      const length = db.getBinaryFast(key)?.length ?? 0;
      // A value over half a page lives on overflow pages: its node holds a page number.
      bytes += length > OVERFLOW_VALUE_BYTES ? 8 : length;
      if (bytes >= reach) return;
    }
  };
  for (const { first, last } of removed) {
    walk({ start: first, reverse: true });
    walk({ start: last });
  }
  for (const key of touched.values()) {
    const value = db.getBinary(key);
    if (value) db.put(key, asBinary(value) as V);
  }
  return touched.size;
}

/** Above this, LMDB (4 KiB pages) stores a value on overflow pages. */
const OVERFLOW_VALUE_BYTES = 2000;

/**
 * Copies the entries of a database written before names became digests
 * (`legacyName`) into `target`, each through `convert` (its key and value as
 * they must be now), then drops it. An entry whose new key exists already was
 * written since, by this code, and wins; so running it again after a crash
 * finishes the move. Returns how many entries it copied; the dropped pages
 * keep the names until the next scrub.
 */
export async function moveDatabase<V, K extends Key, LV, LK extends Key>(
  root: RootDatabase,
  legacyName: string,
  target: Database<V, K>,
  convert: (key: LK, value: LV) => [K, V],
): Promise<number> {
  const legacy = openExisting<LV, LK>(root, legacyName);
  if (!legacy) return 0;
  const moved = await root.transaction(() => {
    let count = 0;
    for (const { key, value } of legacy.getRange()) {
      const [nextKey, nextValue] = convert(key, value);
      if (target.doesExist(nextKey)) continue;
      target.put(nextKey, nextValue);
      count++;
    }
    return count;
  });
  await legacy.drop();
  await root.flushed;
  return moved;
}

/** What one scrub did. */
export interface ScrubReport {
  /** Filler rounds written; one unless readers or a short count forced more. */
  readonly rounds: number;
  /** Pages of zero filler written, in all rounds. */
  readonly fillerPages: number;
  /** True when every page free when the scrub began has been overwritten since. */
  readonly complete: boolean;
}

/** The database the filler lives in while a round runs; empty otherwise. */
const FILLER_DB = 'scrub';
const SETTLE_KEY = -1;
/** LMDB's page header in lmdb-js 3 (24 bytes; 16 in stock LMDB): a value of pageSize - 24 fills one overflow page. */
const PAGE_HEADER_BYTES = 24;
/** Filler pages per transaction: LMDB keeps a transaction's dirty pages in memory (16 MiB here). */
const PAGES_PER_TRANSACTION = 4096;
const MAX_ROUNDS = 3;
/** How long a round waits for readers of snapshots older than its start (20 × 25 ms). */
const READER_WAITS = 20;
const READER_WAIT_MS = 25;

/**
 * Overwrites every free page of an LMDB environment with zeros, so that what
 * deleted entries left in freed pages is gone from the file.
 *
 * How: LMDB hands out free pages before it grows the file, and writes each
 * page it hands out in full (a new page is zeroed in memory first, since
 * lmdb-js leaves noMemInit off). A round
 *   1. commits a one-byte write and waits for it to reach the disk: with
 *      lmdb-js's overlapping sync, pages freed by the newest synced
 *      transaction are not reusable yet, so the deleting transaction must not
 *      be the newest; then waits (bounded) until no reader, in any process,
 *      still reads a snapshot from before that commit, since LMDB keeps the
 *      pages such a reader may see;
 *   2. counts the free pages: every page up to the last one, less the two
 *      meta pages and the branch, leaf and overflow pages of every database,
 *      the main and free-list databases included (`getStats()`);
 *   3. writes that many values of one page each (plus a margin) into the
 *      filler database, in transactions of at most 4,096 pages;
 *   4. checks that the file grew: it grows only once no reusable free page is
 *      left, so every page free at 1. has been written with zeros or filler;
 *   5. empties the filler database, leaving its pages free and zeroed.
 * The cost is one write of the free space: small when little is free. A
 * second round runs only when a reader held old pages (or the count fell
 * short); after three, the scrub reports itself incomplete.
 *
 * Pages freed during a round (by the round's own commits, or by other writers
 * meanwhile) are copies of live pages, never deleted data, so they need no
 * overwriting. Scrubs of one environment run one at a time.
 */
export class FreePageScrubber {
  private readonly filler: Database<Buffer, number>;
  private readonly databases = new Map<string, Database | undefined>();
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly root: RootDatabase) {
    this.filler = root.openDB({ name: FILLER_DB, encoding: 'binary' });
  }

  /** Runs a scrub after any scrub already running. */
  scrub(): Promise<ScrubReport> {
    const run = this.running.then(() => this.run());
    this.running = run.catch(() => {});
    return run;
  }

  private async run(): Promise<ScrubReport> {
    let fillerPages = 0;
    let margin = 16;
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      const readersDone = await this.settle();
      const before = this.pages();
      const count = before.free + margin + Math.ceil(before.free / 64);
      await this.fill(count, before.pageSize);
      fillerPages += count;
      const grew = this.pages().total > before.total;
      await this.filler.clearAsync();
      await this.root.flushed;
      if (grew && readersDone) return { rounds: round, fillerPages, complete: true };
      if (!grew) margin *= 16;
    }
    return { rounds: MAX_ROUNDS, fillerPages, complete: false };
  }

  /** Step 1: a durable commit, then (bounded) until no reader predates it. True when none does. */
  private async settle(): Promise<boolean> {
    await this.root.transaction(() => this.filler.put(SETTLE_KEY, Buffer.alloc(1)));
    await this.root.flushed;
    this.root.resetReadTxn();
    const settledAt = this.stats().lastTxnId;
    for (let wait = 0; wait < READER_WAITS; wait++) {
      if (oldestReader(this.root) >= settledAt) return true;
      await new Promise((resolve) => setTimeout(resolve, READER_WAIT_MS));
    }
    return oldestReader(this.root) >= settledAt;
  }

  private async fill(count: number, pageSize: number): Promise<void> {
    const page = asBinary(Buffer.alloc(pageSize - PAGE_HEADER_BYTES)) as Buffer;
    for (let start = 0; start < count; start += PAGES_PER_TRANSACTION) {
      const end = Math.min(count, start + PAGES_PER_TRANSACTION);
      await this.root.transaction(() => {
        for (let i = start; i < end; i++) this.filler.put(i, page);
      });
    }
    await this.root.flushed;
  }

  /** Step 2: the file's pages and how many of them are free, as of the newest commit. */
  private pages(): { free: number; total: number; pageSize: number } {
    this.root.resetReadTxn();
    const stats = this.stats();
    let used = 2 + pagesOf(stats.root) + pagesOf(stats.free);
    for (const db of this.allDatabases()) used += pagesOf(db.getStats() as TreeStats);
    const total = stats.lastPageNumber + 1;
    return { free: total - used, total, pageSize: stats.pageSize };
  }

  /** Every named database of the environment, whoever opened it (a handle of our own, for statistics). */
  private *allDatabases(): Generator<Database> {
    for (const name of this.root.getKeys()) {
      if (typeof name !== 'string') continue;
      if (!this.databases.has(name)) this.databases.set(name, openExisting(this.root, name));
      const db = this.databases.get(name);
      if (db) yield db;
    }
  }

  private stats(): EnvStats {
    return this.root.getStats() as EnvStats;
  }
}

/** Refuses an incomplete scrub: deleted bytes may still be in the files. */
export function assertComplete(report: ScrubReport, what: string): void {
  if (report.complete) return;
  throw new TandemError(
    ErrorCodes.CONFLICT,
    `${what}: ${report.rounds} scrub rounds could not overwrite every free page, because a reader kept an older snapshot open; scrub again once it has finished`,
    { rounds: report.rounds, fillerPages: report.fillerPages },
  );
}

/** The named database, or undefined when it does not exist (lmdb-js's `create: false`, missing from its types). */
function openExisting<V, K extends Key>(
  root: RootDatabase,
  name: string,
): Database<V, K> | undefined {
  const options = { name, create: false } as DatabaseOptions & { name: string };
  return root.openDB<V, K>(options) as Database<V, K> | undefined;
}

interface TreeStats {
  readonly treeBranchPageCount: number;
  readonly treeLeafPageCount: number;
  readonly overflowPages: number;
}

interface EnvStats {
  readonly pageSize: number;
  readonly lastPageNumber: number;
  readonly lastTxnId: number;
  readonly root: TreeStats;
  readonly free: TreeStats;
}

const pagesOf = (tree: TreeStats) =>
  tree.treeBranchPageCount + tree.treeLeafPageCount + tree.overflowPages;

/** The oldest snapshot a reader holds, from LMDB's reader table (all processes); Infinity when none. */
function oldestReader(root: RootDatabase): number {
  let oldest = Number.POSITIVE_INFINITY;
  for (const line of root.readerList().split('\n').slice(1)) {
    const txnId = Number(line.trim().split(/\s+/)[2]);
    if (Number.isInteger(txnId) && txnId < oldest) oldest = txnId;
  }
  return oldest;
}

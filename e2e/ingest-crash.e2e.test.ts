/**
 * Acknowledged means durable (DESIGN.md invariant 1) and the warehouse holds
 * the log exactly once (invariant 2), across a kill -9: `tandem start`
 * imports a large generated POS file while a client streams tracking
 * batches; the process is killed (SIGKILL) with both in flight. Started
 * again on the same data directory, the client retries what it saw no answer
 * to — the import, the batches that failed — and resends a few it did see
 * answered (a client that lost the answer); the platform catches up. Then,
 * read from outside (`tandem log read`, the SQL API): every acknowledged
 * event is in the log exactly once, the retries duplicated nothing, and
 * every ClickHouse count matches the log.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Transform } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { type LoggedEvent, readLog } from './testing/read-log.js';
import { CLI, startTandem, type TandemProcess } from './testing/tandem-process.js';

const run = promisify(execFile);

const WRITE_KEY = 'wk_crash_e2e_write_key_0123456789';
const ADMIN_KEY = 'adm_crash_e2e_admin_key_0123456789';
/** About 14k receipts with 35k lines: the import takes several seconds on 2 cores. */
const DATASET = ['--shoppers', '6000', '--stores', '10', '--days', '100', '--seed', '11'];
/** Batches the tracking client has to send; it stops at the crash, long before the last. */
const BATCHES = 3000;
/** Tracking requests in flight at once. */
const SENDERS = 2;
/** Answered batches the client sends again after the restart, as if their answers were lost. */
const RESENT_ACKNOWLEDGED = 5;
const SEGMENT_TYPES = new Set(['track', 'page', 'screen', 'identify', 'alias', 'group']);

interface Batch {
  readonly body: string;
  readonly messageIds: readonly string[];
}

type Answer =
  | { readonly answered: true; readonly status: number; readonly body: string }
  | { readonly answered: false; readonly error: string };

let workDir: string | undefined;
const running: TandemProcess[] = [];

afterAll(async () => {
  for (const tandem of running) tandem.child.kill('SIGKILL');
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('a crash during an import and tracking', () => {
  it('keeps every acknowledged event once, and the warehouse matches the log after a restart', async () => {
    workDir = await mkdtemp(join(tmpdir(), 'tandem-e2e-ingest-crash-'));
    const dataDir = join(workDir, 'data');
    const spool = join(workDir, 'tmp');
    await mkdir(spool);
    const dataset = join(workDir, 'dataset');
    await run(process.execPath, ['--import', 'tsx', CLI, 'generate', ...DATASET, '--out', dataset]);
    const manifest = JSON.parse(await readFile(join(dataset, 'manifest.json'), 'utf8')) as {
      counts: { receipts: number; receiptLines: number };
    };
    const receiptFile = join(dataset, 'pos', 'receipts.ndjson');
    const batches = await firstBatches(join(dataset, 'clickstream.ndjson'), BATCHES);
    const env = {
      ...process.env,
      TANDEM_DATA_DIR: dataDir,
      TANDEM_LOG_FORMAT: 'json',
      TANDEM_LOG_LEVEL: 'info',
      TANDEM_PORT: '0',
      TANDEM_WRITE_KEY: WRITE_KEY,
      TANDEM_ADMIN_KEY: ADMIN_KEY,
      // The generated receipts are dated 2026: nothing may age out while the test counts.
      TANDEM_RETENTION: 'none',
      // The import spools its upload here, where the test can see what a kill leaves behind.
      TMPDIR: spool,
    } as NodeJS.ProcessEnv;

    // --- First run: the import and the tracking client, killed mid-way. ---
    const first = await startTandem(env);
    running.push(first);
    let address = first.running.address;
    let bytesSent = 0;
    let importAnswered = false;
    const firstImport = postImport(address, receiptFile, (bytes) => {
      bytesSent += bytes;
    }).then((answer) => {
      importAnswered = answer.answered;
      return answer;
    });
    const outcome: ('acked' | 'failed')[] = [];
    const refusals: string[] = [];
    let next = 0;
    let crashing = false;
    const sender = async () => {
      while (!crashing && next < batches.length) {
        const i = next++;
        const answer = await postBatch(address, (batches[i] as Batch).body);
        if (answer.answered && answer.status === 200 && answer.body === '{"success":true}')
          outcome[i] = 'acked';
        else {
          outcome[i] = 'failed';
          if (answer.answered && !crashing) refusals.push(`${answer.status} ${answer.body}`);
        }
      }
    };
    const senders = Array.from({ length: SENDERS }, sender);
    const acked = () => outcome.filter((state) => state === 'acked').length;

    // Mid-way: a quarter of the receipts in the log, tracking answered and still going.
    const killAt = Math.floor(manifest.counts.receipts / 4);
    let receiptsAtKill = 0;
    await poll(
      async () => {
        receiptsAtKill = (await metric(address, 'tandem_ingest_events_accepted_total', 'pos')) ?? 0;
        return (
          importAnswered || next >= batches.length || (receiptsAtKill >= killAt && acked() >= 20)
        );
      },
      120_000,
      'the import to be a quarter done',
    );
    expect(importAnswered, 'the import finished before the kill: make the file larger').toBe(false);
    expect(next, 'the tracking client ran out of batches before the kill').toBeLessThan(
      batches.length,
    );
    expect(bytesSent).toBeGreaterThan(0);
    expect(receiptsAtKill).toBeLessThan(manifest.counts.receipts);
    crashing = true;
    first.child.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await Promise.all(senders);
    expect(refusals).toEqual([]);
    expect((await firstImport).answered, 'the import was answered before the kill').toBe(false);
    const sent = next;
    const ackedBeforeKill = [...outcome.keys()].filter((i) => outcome[i] === 'acked');
    const failedBeforeKill = [...outcome.keys()].filter((i) => outcome[i] === 'failed');
    // The killed import's spooled upload (plaintext member cards, phones, card tokens) is left behind…
    expect(await spools(spool)).toHaveLength(1);

    // --- Second run on the same data: the client retries, the platform catches up. ---
    const second = await startTandem(env);
    running.push(second);
    address = second.running.address;
    // …until the next process starts.
    expect(await spools(spool)).toEqual([]);
    const resend = [...failedBeforeKill, ...ackedBeforeKill.slice(-RESENT_ACKNOWLEDGED)];
    const [retriedImport, retriedBatches] = await Promise.all([
      postImport(address, receiptFile),
      (async () => {
        const answers: string[] = [];
        for (const i of resend) {
          const answer = await postBatch(address, (batches[i] as Batch).body);
          answers.push(answer.answered ? `${answer.status} ${answer.body}` : answer.error);
        }
        return answers;
      })(),
    ]);
    expect(retriedBatches).toEqual(resend.map(() => '200 {"success":true}'));
    expect(retriedImport).toMatchObject({ answered: true, status: 200 });
    expect(JSON.parse((retriedImport as { body: string }).body)).toMatchObject({
      success: true,
      accepted: manifest.counts.receipts,
      rejected: 0,
    });
    await poll(
      async () => (await metric(address, 'tandem_projector_lag_events')) === 0,
      180_000,
      'the projector to catch up with the log',
    );
    expect((await fetch(`${address}/readyz`)).status).toBe(200);
    expect(await spools(spool)).toEqual([]);

    const warehouse = {
      events: await sql<{ event_id: string; type: string }>(
        address,
        'SELECT event_id, type FROM events',
      ),
      orders: await sql<{ channel: string; orders: number; lines: number }>(
        address,
        'SELECT channel, count() AS orders, sum(lines) AS lines FROM orders GROUP BY channel',
      ),
      orderLines: await sql<{ channel: string; rows: number }>(
        address,
        'SELECT channel, count() AS rows FROM order_lines GROUP BY channel',
      ),
    };
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);

    // --- What the log holds, read as a user reads it. ---
    const log = new LogSummary();
    await readLog(env, (event) => log.add(event));

    // Every acknowledged batch once; the retried ones once; nothing the client never sent.
    const count = (messageId: string) => log.messages.get(messageId) ?? 0;
    const messagesOf = (indexes: readonly number[]) =>
      indexes.flatMap((i) => (batches[i] as Batch).messageIds);
    expect(messagesOf(ackedBeforeKill).filter((id) => count(id) !== 1)).toEqual([]);
    expect(messagesOf(failedBeforeKill).filter((id) => count(id) !== 1)).toEqual([]);
    const sentMessages = new Set(messagesOf([...Array(sent).keys()]));
    expect([...log.messages.keys()].filter((id) => !sentMessages.has(id))).toEqual([]);
    expect(log.trackingWithoutMessageId).toBe(0);

    // Every receipt of the file once, lines and all.
    const fileReceipts = await receiptKeys(receiptFile);
    expect(fileReceipts.size).toBe(manifest.counts.receipts);
    expect([...log.receipts].filter(([, n]) => n !== 1)).toEqual([]);
    expect([...fileReceipts].filter((key) => !log.receipts.has(key))).toEqual([]);
    expect(log.receipts.size).toBe(manifest.counts.receipts);
    expect(log.receiptLines).toBe(manifest.counts.receiptLines);
    expect(log.duplicateIds).toEqual([]);

    // The warehouse holds exactly the log's facts, and its orders match them.
    const inWarehouse = new Set(warehouse.events.map((row) => row.event_id));
    expect(inWarehouse.size).toBe(warehouse.events.length);
    expect(log.factIds.filter((id) => !inWarehouse.has(id)).slice(0, 10)).toEqual([]);
    const inLog = new Set(log.factIds);
    expect(warehouse.events.filter((row) => !inLog.has(row.event_id)).slice(0, 10)).toEqual([]);
    expect(countBy(warehouse.events.map((row) => row.type))).toEqual(log.types);
    // A channel without orders has no row (the client may have sent no online order yet).
    const orders = (channel: string) =>
      warehouse.orders.find((row) => row.channel === channel) ?? { channel, orders: 0, lines: 0 };
    const orderLines = (channel: string) =>
      warehouse.orderLines.find((row) => row.channel === channel)?.rows ?? 0;
    expect(orders('offline')).toEqual({
      channel: 'offline',
      orders: log.receipts.size,
      lines: log.receiptLines,
    });
    expect(orders('online')).toEqual({
      channel: 'online',
      orders: log.onlineOrders,
      lines: log.onlineLines,
    });
    expect(orderLines('offline')).toBe(log.receiptLines);
    expect(orderLines('online')).toBe(log.onlineLines);
    expect(warehouse.orders.map((row) => row.channel).sort()).toEqual(
      log.onlineOrders > 0 ? ['offline', 'online'] : ['offline'],
    );

    console.info(
      `ingest crash: killed with ${receiptsAtKill}/${manifest.counts.receipts} receipts in the log, ` +
        `${ackedBeforeKill.length} batches acknowledged, ${failedBeforeKill.length} failed, ` +
        `${sent} sent, ${log.onlineOrders} online orders; log: ${log.factIds.length} facts`,
    );
  }, 300_000);
});

/** The first `count` batches of a generated clickstream (one `/v1/batch` body a line). */
async function firstBatches(file: string, count: number): Promise<Batch[]> {
  const batches: Batch[] = [];
  const lines = createInterface({ input: createReadStream(file) });
  for await (const line of lines) {
    const { batch } = JSON.parse(line) as { batch: { messageId: string }[] };
    batches.push({ body: line, messageIds: batch.map((call) => call.messageId) });
    if (batches.length === count) break;
  }
  lines.close();
  return batches;
}

/** The receipts of an NDJSON POS file, as `storeId/receiptId`. */
async function receiptKeys(file: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const line of createInterface({ input: createReadStream(file) })) {
    const receipt = JSON.parse(line) as { storeId: string; receiptId: string };
    keys.add(`${receipt.storeId}/${receipt.receiptId}`);
  }
  return keys;
}

/** The import spools in `directory`. */
async function spools(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => name.startsWith('tandem-import-'));
}

/** Posts one tracking batch with the write key; never throws (a dead server is `answered: false`). */
async function postBatch(address: string, body: string): Promise<Answer> {
  return answerOf(
    fetch(`${address}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic(WRITE_KEY) },
      body,
    }),
  );
}

/** Streams a POS file to `/v1/imports` as NDJSON, telling `onBytes` what went out. */
async function postImport(
  address: string,
  file: string,
  onBytes: (bytes: number) => void = () => {},
): Promise<Answer> {
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  return answerOf(
    fetch(`${address}/v1/imports`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: basic(WRITE_KEY) },
      body: createReadStream(file).pipe(counted),
      duplex: 'half',
    }),
  );
}

async function answerOf(request: Promise<Response>): Promise<Answer> {
  try {
    const response = await request;
    return { answered: true, status: response.status, body: await response.text() };
  } catch (error) {
    return { answered: false, error: String(error) };
  }
}

function basic(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

/** A metric's value on `/metrics` (the sample with `source` when given), or undefined. */
async function metric(address: string, name: string, source?: string): Promise<number | undefined> {
  const text = await (await fetch(`${address}/metrics`)).text();
  const labels = source === undefined ? '' : `\\{source="${source}"\\}`;
  const found = new RegExp(`^${name}${labels} (\\S+)$`, 'm').exec(text)?.[1];
  return found === undefined ? undefined : Number(found);
}

/** One query on the SQL API with the admin key; its rows. */
async function sql<T>(address: string, query: string): Promise<T[]> {
  const response = await fetch(`${address}/v1/sql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
    body: JSON.stringify({ query }),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`SQL answered ${response.status}: ${text}`);
  return (JSON.parse(text) as { data: T[] }).data;
}

/** Polls `done` every 100 ms until it holds; fails naming what it waited for after `timeout` ms. */
async function poll(done: () => Promise<boolean>, timeout: number, what: string): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`waited ${timeout} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** What the log holds of tracking calls and receipts, counted as the warehouse should count them. */
class LogSummary {
  /** Tracking calls by message id. */
  readonly messages = new Map<string, number>();
  /** Receipts by `storeId/receiptId`. */
  readonly receipts = new Map<string, number>();
  /** Ids of the events the warehouse's `events` table holds (tracking calls and receipts). */
  readonly factIds: string[] = [];
  readonly duplicateIds: string[] = [];
  /** Facts by event type. */
  readonly types: Record<string, number> = {};
  trackingWithoutMessageId = 0;
  receiptLines = 0;
  onlineOrders = 0;
  onlineLines = 0;
  private readonly ids = new Set<string>();

  add(event: LoggedEvent): void {
    const receipt = event.type === 'pos.receipt';
    if (!receipt && !SEGMENT_TYPES.has(event.type)) return;
    if (this.ids.has(event.id)) this.duplicateIds.push(event.id);
    this.ids.add(event.id);
    this.factIds.push(event.id);
    this.types[event.type] = (this.types[event.type] ?? 0) + 1;
    const data = (event.data.data ?? {}) as Record<string, unknown>;
    if (receipt) {
      const key = `${String(data.storeId)}/${String(data.receiptId)}`;
      this.receipts.set(key, (this.receipts.get(key) ?? 0) + 1);
      this.receiptLines += (data.lines as unknown[]).length;
      return;
    }
    if (typeof data.messageId === 'string')
      this.messages.set(data.messageId, (this.messages.get(data.messageId) ?? 0) + 1);
    else this.trackingWithoutMessageId++;
    if (event.type === 'track' && data.event === 'Order Completed') {
      this.onlineOrders++;
      const products = (data.properties as { products?: unknown } | undefined)?.products;
      this.onlineLines += Array.isArray(products) ? products.length : 0;
    }
  }
}

/**
 * The demo chain of `tandem demo` (what `npm start` runs): a generated
 * dataset sent through the running platform over HTTP, as a shop's SDKs and
 * tills would send it — tracking batches, catalog upserts, a POS file import
 * — then resolved, projected, a model trained and a segment saved.
 */
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import type { Logger } from 'pino';
import {
  comparePositions,
  type EventStore,
  type Position,
  parsePosition,
  StreamNotFoundError,
} from '../eventstore/event-store.js';
import { DATASET_FILES, generateDataset } from '../fixtures/generate.js';
import { chunks, lines, pump } from './file-lines.js';
import type { Platform } from './platform.js';

/** The stream recording the demo's load: started, then loaded with what it holds. */
export const DEMO_STREAM = 'tandem-demo';

export interface DemoSize {
  readonly shoppers: number;
  readonly stores: number;
  readonly days: number;
  readonly seed: number;
}

/** What `demo.loaded` records: the size, what went in, and the segment the examples use. */
export interface DemoLoaded {
  readonly size: DemoSize;
  readonly calls: number;
  readonly receipts: number;
  readonly segmentId: string;
  readonly seconds: number;
}

/** The segment the demo saves and the examples export: browsed online, then bought the same category in a store within 7 days. */
export const SHOWROOMERS = {
  type: 'sequence',
  first: { channel: 'online', eventName: 'Product Viewed' },
  // biome-ignore lint/suspicious/noThenProperty: the sequence step the segment language names `then`
  then: { channel: 'offline', eventName: 'Order Completed' },
  withinDays: 7,
  sameCategory: true,
} as const;

/** Tracking batches in flight at once, as several SDK clients would send them. */
const IN_FLIGHT = 16;
/** As many entries as `/v1/catalog/…` takes in one request. */
const CATALOG_PER_CALL = 1000;

/** Whether the log holds a loaded demo (`loaded`), a load that stopped mid-way (`started`), or neither. */
export async function readDemo(
  eventStore: EventStore,
): Promise<{ readonly loaded?: DemoLoaded; readonly started: boolean }> {
  let started = false;
  let loaded: DemoLoaded | undefined;
  try {
    for await (const event of eventStore.readStream(DEMO_STREAM)) {
      started = true;
      if (event.type === 'demo.loaded') loaded = event.data as unknown as DemoLoaded;
    }
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
  return { started, ...(loaded ? { loaded } : {}) };
}

/** A client of the running platform: the write key for ingest, the admin key for the API. */
export interface DemoClient {
  readonly address: string;
  readonly writeKey: string;
  readonly adminKey: string;
}

/**
 * Generates the demo dataset (the period ends today, so "last 30 days"
 * means something), sends it through `client`'s platform, waits until
 * identity and the warehouse hold all of it, trains the recommendation model,
 * saves the showroomers segment and records the load in the log. A load
 * stopped mid-way can run again: every call and receipt carries its id,
 * and the pipeline stores a retried one once.
 */
export async function loadDemo(deps: {
  readonly size: DemoSize;
  readonly dataDir: string;
  readonly eventStore: EventStore;
  readonly platform: Platform;
  readonly client: DemoClient;
  readonly log: Logger;
}): Promise<DemoLoaded> {
  const { size, eventStore, platform, client, log } = deps;
  const startedAt = performance.now();
  await eventStore.append(DEMO_STREAM, [
    { id: crypto.randomUUID(), type: 'demo.started', data: { size: { ...size } } },
  ]);
  const files = join(deps.dataDir, 'demo-dataset');
  const progress = new Progress(log);
  try {
    progress.stage('generating shoppers', size.shoppers);
    const start = new Date(Date.now() - size.days * 86_400_000).toISOString().slice(0, 10);
    await generateDataset({ ...size, start }, files, (done) => progress.update(done));
    progress.done();

    const http = new Http(client);
    for (const [name, path] of [
      ['catalog', '/v1/catalog/products'],
      ['stores', '/v1/catalog/stores'],
    ] as const) {
      for await (const entries of chunks(lines(join(files, DATASET_FILES[name])), CATALOG_PER_CALL))
        await http.post(path, `[${entries.join(',')}]`, 'write');
    }

    const batches = await countLines(join(files, DATASET_FILES.clickstream));
    progress.stage('tracking batches → POST /v1/batch', batches);
    let calls = 0;
    await pump(lines(join(files, DATASET_FILES.clickstream)), IN_FLIGHT, async (line) => {
      const body = withoutSentAt(JSON.parse(line));
      await http.post('/v1/batch', JSON.stringify(body), 'write');
      calls += body.batch.length;
      progress.increment();
    });
    progress.done();

    const receiptsFile = join(files, DATASET_FILES.receipts);
    progress.stage('POS receipts → POST /v1/imports (bytes)', (await stat(receiptsFile)).size);
    const report = await http.post<{ accepted: number }>(
      '/v1/imports',
      createReadStream(receiptsFile).pipe(
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            progress.increment(chunk.length);
            done(null, chunk);
          },
        }),
      ),
      'write',
      'application/x-ndjson',
    );
    progress.done();

    progress.stage('identity and warehouse catching up (log positions)', 0);
    await caughtUp(eventStore, platform, (behind) => progress.remaining(behind));
    progress.done();

    await http.post('/v1/recommendations/refresh', undefined, 'admin');
    const segment = await http.post<{ segmentId: string }>(
      '/v1/segments',
      JSON.stringify({
        name: 'Showroomers',
        description: 'Browsed online, then bought the same category in a store within 7 days',
        condition: SHOWROOMERS,
      }),
      'admin',
    );
    await http.post(`/v1/segments/${segment.segmentId}/refresh`, undefined, 'admin');

    const loaded: DemoLoaded = {
      size,
      calls,
      receipts: report.accepted,
      segmentId: segment.segmentId,
      seconds: Math.round((performance.now() - startedAt) / 1000),
    };
    await eventStore.append(DEMO_STREAM, [
      { id: crypto.randomUUID(), type: 'demo.loaded', data: { ...loaded, size: { ...size } } },
    ]);
    return loaded;
  } finally {
    progress.done();
    await rm(files, { recursive: true, force: true });
  }
}

/**
 * Waits until the resolver has decided every fact in the log now, then
 * until the projector has written everything up to and including those
 * decisions. `onBehind` hears how far the projector still has to go.
 */
export async function caughtUp(
  eventStore: EventStore,
  platform: Pick<Platform, 'resolver' | 'projector'>,
  onBehind: (positions: number) => void = () => {},
): Promise<void> {
  const { resolver, projector } = platform;
  if (!resolver || !projector) throw new Error('the demo needs the resolver and the projector');
  const at = (text: string | undefined) => (text === undefined ? undefined : parsePosition(text));
  const reached = (position: Position | undefined, target: Position | undefined) =>
    target === undefined || (position !== undefined && comparePositions(position, target) >= 0);
  const facts = await eventStore.headPosition();
  while (!reached(at(resolver.status().position), facts)) await sleep(200);
  const decisions = await eventStore.headPosition();
  while (!reached(at(projector.status().position), decisions)) {
    onBehind((await projector.lag()).events);
    await sleep(200);
  }
}

/** A batch as a backfill sends it: without `sentAt`, so clock-skew correction keeps the recorded times. */
function withoutSentAt(body: { sentAt?: unknown; batch: { sentAt?: unknown }[] }) {
  const { sentAt: _batchSentAt, ...rest } = body;
  return { ...rest, batch: body.batch.map(({ sentAt: _sentAt, ...call }) => call) };
}

/** The platform's HTTP API, as a client outside the process would call it. */
class Http {
  private readonly auth: Record<'write' | 'admin', string>;

  constructor(private readonly client: DemoClient) {
    this.auth = {
      write: `Basic ${Buffer.from(`${client.writeKey}:`).toString('base64')}`,
      admin: `Bearer ${client.adminKey}`,
    };
  }

  async post<T = unknown>(
    path: string,
    body: string | NodeJS.ReadableStream | undefined,
    key: 'write' | 'admin',
    contentType = 'application/json',
  ): Promise<T> {
    const response = await fetch(`${this.client.address}${path}`, {
      method: 'POST',
      headers: {
        authorization: this.auth[key],
        ...(body === undefined ? {} : { 'content-type': contentType }),
      },
      body: body as RequestInit['body'],
      ...(typeof body === 'object' ? { duplex: 'half' } : {}),
    } as RequestInit);
    const text = await response.text();
    if (!response.ok)
      throw new Error(`POST ${path} answered ${response.status}: ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }
}

/** A progress bar on a terminal; a log line per stage elsewhere. */
class Progress {
  private bar: SingleBar | undefined;
  private name = '';
  private value = 0;
  private started = performance.now();

  constructor(private readonly log: Logger) {}

  stage(name: string, total: number): void {
    this.done();
    this.name = name;
    this.value = 0;
    this.started = performance.now();
    if (process.stderr.isTTY) {
      this.bar = new SingleBar({
        format: `${name} [{bar}] {value}/{total} {eta_formatted}`,
        hideCursor: true,
        etaBuffer: 50,
      });
      this.bar.start(total, 0);
    } else this.log.info({ stage: name, total }, 'demo: started a stage');
  }

  update(value: number): void {
    this.value = value;
    this.bar?.update(value);
  }

  increment(by = 1): void {
    this.update(this.value + by);
  }

  /** For a stage counted down: sets the total on its first call. */
  remaining(left: number): void {
    if (!this.bar) return;
    if (this.bar.getTotal() === 0) this.bar.setTotal(left);
    this.bar.update(Math.max(0, this.bar.getTotal() - left));
  }

  done(): void {
    if (!this.name) return;
    if (this.bar) {
      this.bar.update(this.bar.getTotal());
      this.bar.stop();
      this.bar = undefined;
    } else
      this.log.info(
        { stage: this.name, seconds: Math.round((performance.now() - this.started) / 1000) },
        'demo: finished a stage',
      );
    this.name = '';
  }
}

async function countLines(file: string): Promise<number> {
  let count = 0;
  for await (const _ of lines(file)) count++;
  return count;
}

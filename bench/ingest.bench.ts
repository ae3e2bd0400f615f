/**
 * `npm run bench -- ingest`: HTTP load on `/v1/batch` with 100 fixture events
 * a request, against `tandem serve` in a second process on the embedded
 * stores, and — in the same run — the raw append rate of the same events
 * straight into the LMDB event store, as the ratio's baseline. Then the same
 * calls at half the peak rate, evenly spaced (`paced-load.ts`), for the
 * latency a healthy server shows.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { openLmdbEventStore } from '../eventstore/event-store.lmdb.js';
import { generateDataset } from '../fixtures/generate.js';
import type { SegmentCall } from '../schemas/segment.js';
import { pacedLoad } from './paced-load.js';
import { type BenchOptions, formatBenchReport, formatRate, median, percentile } from './report.js';

const EVENTS_PER_REQUEST = 100;
const CONNECTIONS = 16;
const WRITE_KEY = `wk_bench_${randomUUID()}`;
const HEADERS = {
  'content-type': 'application/json',
  authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`,
};

/** Runs the benchmark and returns the printed report. */
export async function runIngestBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-ingest-'));
  try {
    const bodies = await requestBodies(dir, Math.max(50, Math.round(6000 * scale)));
    const events = bodies.length * EVENTS_PER_REQUEST;
    const raw = await rawAppendRate(join(dir, 'raw'), bodies);
    const server = await startServer(join(dir, 'server'));
    try {
      const peak = await load(server.address, bodies);
      const halfRate = Math.max(1, Math.round(peak.requestsPerSecond / 2));
      const paced = await pacedLoad({
        url: `${server.address}/v1/batch`,
        headers: HEADERS,
        bodies: bodies.map(withFreshIds),
        rate: halfRate,
        connections: CONNECTIONS,
      });
      const floor = await startChild(
        'the HTTP floor',
        [fileURLToPath(new URL('./http-floor.child.js', import.meta.url))],
        {},
      );
      const bare = await load(floor.address, bodies).finally(() => floor.stop());
      const report = formatBenchReport(
        `ingest: POST /v1/batch, ${EVENTS_PER_REQUEST} fixture events a request, ${CONNECTIONS} connections, ${events.toLocaleString('en-US')} events`,
        [{ name: 'events accepted', unit: 'events/s', ours: peak.eventsPerSecond, raw }],
        [{ row: 'events accepted', minRatio: 0.3, minOurs: 50_000 }],
      );
      return [
        report,
        `latency at peak: p50 ${peak.p50} ms, p99 ${peak.p99} ms; non-2xx: ${peak.errors}`,
        `latency at 50% of peak (${halfRate} requests/s, evenly spaced, open loop, from when each was due): p50 ${median(paced.latencies).toFixed(0)} ms, p99 ${percentile(paced.latencies, 0.99).toFixed(0)} ms (target p99 < 100 ms); non-2xx: ${paced.errors}`,
        'raw = the same calls appended straight into the LMDB event store, 100 a call, 16 in flight: no HTTP,',
        'validation, normalisation or sealing.',
        `HTTP floor: a bare fastify server that only parses the same bodies takes ${formatRate(bare.eventsPerSecond)} events/s`,
        `(p50 ${bare.p50} ms) under the same load; ours is ${(peak.eventsPerSecond / bare.eventsPerSecond).toFixed(2)} of it.`,
      ].join('\n');
    } finally {
      await server.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Fixture calls regrouped into bodies of 100, as an SDK flushing a full queue would send. */
async function requestBodies(dir: string, requests: number): Promise<string[]> {
  const out = join(dir, 'fixtures');
  await generateDataset(
    { shoppers: Math.ceil((requests * EVENTS_PER_REQUEST) / 19), seed: 11 },
    out,
  );
  const calls = (await readFile(join(out, 'clickstream.ndjson'), 'utf8'))
    .trimEnd()
    .split('\n')
    .flatMap((line) => (JSON.parse(line) as { batch: SegmentCall[] }).batch);
  const bodies: string[] = [];
  for (
    let i = 0;
    i + EVENTS_PER_REQUEST <= calls.length && bodies.length < requests;
    i += EVENTS_PER_REQUEST
  ) {
    const batch = calls.slice(i, i + EVENTS_PER_REQUEST);
    bodies.push(JSON.stringify({ batch, sentAt: batch[batch.length - 1]?.timestamp }));
  }
  return bodies;
}

/** New message ids, so the second run's events are new, not retries. */
function withFreshIds(body: string): string {
  const parsed = JSON.parse(body) as { batch: SegmentCall[] };
  for (const call of parsed.batch) call.messageId = randomUUID();
  return JSON.stringify(parsed);
}

async function rawAppendRate(path: string, bodies: readonly string[]): Promise<number> {
  const store = await openLmdbEventStore({ path });
  try {
    const batches = bodies.map((body) => (JSON.parse(body) as { batch: SegmentCall[] }).batch);
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (next < batches.length) {
          const index = next++;
          const batch = batches[index] as SegmentCall[];
          await store.append(
            `raw-${index % 500}`,
            batch.map((call) => ({
              id: randomUUID(),
              type: call.type,
              data: call as unknown as Record<string, never>,
            })),
          );
        }
      }),
    );
    return (batches.length * EVENTS_PER_REQUEST) / ((performance.now() - started) / 1000);
  } finally {
    await store.close();
  }
}

interface LoadResult {
  readonly eventsPerSecond: number;
  readonly requestsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

/** autocannon at full speed: the peak. */
async function load(address: string, bodies: readonly string[]): Promise<LoadResult> {
  let next = 0;
  const started = performance.now();
  const result = await autocannon({
    url: `${address}/v1/batch`,
    method: 'POST',
    connections: CONNECTIONS,
    amount: bodies.length,
    headers: HEADERS,
    requests: [
      {
        setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] as string }),
      },
    ],
  });
  const seconds = (performance.now() - started) / 1000;
  const ok = result['2xx'];
  return {
    eventsPerSecond: (ok * EVENTS_PER_REQUEST) / seconds,
    requestsPerSecond: ok / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors,
  };
}

/** `tandem serve` in its own process, so the load generator does not share its core. */
function startServer(dataDir: string): Promise<Child> {
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  return startChild(
    'tandem serve',
    [...profileFlags(), cli, 'serve', '--parts', 'ingest', '--port', '0', '--data-dir', dataDir],
    {
      TANDEM_WRITE_KEY: WRITE_KEY,
      TANDEM_LOG_FORMAT: 'json',
      TANDEM_LOG_LEVEL: 'info',
    },
  );
}

interface Child {
  readonly address: string;
  stop(): Promise<void>;
}

/** A Node child that logs its listening address on stderr as JSON; `stop()` sends SIGTERM and waits. */
async function startChild(
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<Child> {
  const child: ChildProcess = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; address?: string };
      if (entry.address) resolve(entry.address);
    });
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code} before listening`)));
  });
  return {
    address,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `TANDEM_BENCH_PROFILE_DIR=DIR` writes a V8 CPU profile of the server there, for a look at where its time goes. */
function profileFlags(): string[] {
  const dir = process.env.TANDEM_BENCH_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/**
 * `npm run bench -- load`: 60 s of mixed traffic against one `tandem demo`
 * process (what `npm start` runs), spawned as a real child on a fresh data
 * directory with a demo chain of 5,000 shoppers loaded through its API.
 * Tracking batches and POS receipts from the chain's own shoppers, segment
 * previews, profile reads and lookups, recommendations and analysts' SQL, in
 * parallel (closed-loop workers, `load-runner.ts`). Reports throughput and
 * p50/p99 per route, every non-2xx by status, the server's memory over time
 * (RSS, and what it holds itself: RSS without the pages of its LMDB files,
 * which are page cache growing with the log; its heaps; its JS heap) and
 * how it stopped on SIGTERM; the ratio's baseline is `GET /healthz` of
 * the same server, same connections, in the same run.
 *
 * `--scale` multiplies the duration and the shoppers;
 * `TANDEM_BENCH_LOAD_SECONDS` and `TANDEM_BENCH_LOAD_SHOPPERS` set them;
 * `TANDEM_BENCH_LOAD_KEEP=1` keeps the temp directory (data and the server's
 * log) and prints where it is; `TANDEM_BENCH_LOAD_NODE_ARGS` adds flags to the
 * server's node (`--trace-gc`, `--heapsnapshot-signal=SIGUSR2`), which
 * NODE_OPTIONS refuses.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  formatLoadReport,
  type HealthSample,
  type LoadMeasurements,
  shutdownClean,
} from './load-report.js';
import { runClosedLoop } from './load-runner.js';
import {
  cpuSeconds,
  type DemoServer,
  readLogLines,
  type ServerExit,
  sampleRss,
  startDemoServer,
} from './load-server.js';
import {
  type LoadRoute,
  mixedRoutes,
  prepareTraffic,
  type TrafficData,
  type TrafficKeys,
} from './load-traffic.js';
import { type BenchOptions, fromEnv } from './report.js';

const SECONDS = 60;
const SHOPPERS = 5000;
const DEMO = { stores: 10, days: 90, seed: 42 } as const;
/**
 * Per-key rate limit of the server under test (TANDEM_API_RATE_LIMIT,
 * default 1200 a minute): the bench's few keys send far more than a person
 * would, so it is lifted for the run.
 */
const RATE_LIMIT = 1_000_000_000;

/** Runs the benchmark and returns the printed report. */
export async function runLoadBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const seconds = fromEnv('TANDEM_BENCH_LOAD_SECONDS') ?? Math.max(5, Math.round(SECONDS * scale));
  const shoppers =
    fromEnv('TANDEM_BENCH_LOAD_SHOPPERS') ?? Math.max(1000, Math.round(SHOPPERS * scale));
  const warmup = Math.max(1, Math.round(seconds / 6));
  const baselineSeconds = Math.max(2, Math.min(5, Math.round(seconds / 12)));
  const keep = process.env.TANDEM_BENCH_LOAD_KEEP === '1';
  const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-load-'));
  try {
    const demo = { shoppers, ...DEMO };
    // The demo computes the same start (today minus its days) when it loads.
    const start = new Date(Date.now() - DEMO.days * 86_400_000).toISOString().slice(0, 10);
    const data = await prepareTraffic(join(dir, 'fixtures'), { ...demo, start });
    const writeKey = `wk_load_${randomUUID()}`;
    const adminKey = `adm_load_${randomUUID()}`;
    const logPath = join(dir, 'server.stderr.log');
    const server = await startDemoServer({
      dataDir: join(dir, 'data'),
      stderrPath: logPath,
      stdoutPath: join(dir, 'server.stdout.log'),
      demo,
      env: {
        TANDEM_LOG_FORMAT: 'json',
        TANDEM_LOG_LEVEL: 'info',
        TANDEM_API_RATE_LIMIT: String(RATE_LIMIT),
        TANDEM_WRITE_KEY: writeKey,
        TANDEM_ADMIN_KEY: adminKey,
      },
      readyTimeoutMs: 15 * 60_000,
      nodeArgs: (process.env.TANDEM_BENCH_LOAD_NODE_ARGS ?? '').split(' ').filter(Boolean),
    });
    let measured: LoadMeasurements;
    let exit: ServerExit;
    try {
      measured = await measure(
        server,
        data,
        { writeKey, adminKey },
        {
          seconds,
          warmup,
          baselineSeconds,
        },
      );
    } finally {
      exit = await server.stop(120_000);
    }
    const log = await readLogLines(logPath);
    const report = formatLoadReport({
      ...measured,
      exit,
      log,
      shoppers,
      data,
      setupSeconds: server.setupSeconds,
      dataFilesMb: await lmdbFilesMb(server.dataDir),
    });
    if (!shutdownClean(exit, log)) process.exitCode = 1;
    return keep ? `${report}\nkept ${dir} (the server's log is server.stderr.log)` : report;
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}

async function measure(
  server: DemoServer,
  data: TrafficData,
  bootstrap: { writeKey: string; adminKey: string },
  times: { seconds: number; warmup: number; baselineSeconds: number },
): Promise<LoadMeasurements> {
  const { address, pid } = server;
  const api = client(address);
  const keys: TrafficKeys = {
    writeKey: bootstrap.writeKey,
    marketerKey: await api.createKey(bootstrap.adminKey, 'marketer'),
    analystKey: await api.createKey(bootstrap.adminKey, 'analyst'),
  };
  const profileIds = await api.profileIds(keys.analystKey);
  const routes = mixedRoutes(data, keys, profileIds);
  const alone = await preflight(address, routes);

  const connections = routes.reduce((sum, route) => sum + route.workers, 0);
  const healthz: LoadRoute = {
    name: 'GET /healthz',
    workers: connections,
    next: () => ({ method: 'GET', path: '/healthz', headers: {} }),
  };
  const baseline = await runClosedLoop(address, [healthz], times.baselineSeconds);

  let origin = performance.now();
  const rss = sampleRss(pid, server.dataDir, () => origin, 1000);
  const health: HealthSample[] = [];
  let sampling = true;
  const healthSampler = (async () => {
    while (sampling) {
      const at = (performance.now() - origin) / 1000;
      const [metrics, ready] = await Promise.all([api.metrics(), api.readiness()]);
      health.push({
        at,
        lagEvents: metrics('tandem_projector_lag_events'),
        lagSeconds: metrics('tandem_projector_lag_seconds'),
        resolverLagEvents: metrics('tandem_resolver_lag_events'),
        resolverLagSeconds: metrics('tandem_resolver_lag_seconds'),
        heapMb: metrics('nodejs_heap_size_used_bytes') / 2 ** 20,
        heapTotalMb: metrics('nodejs_heap_size_total_bytes') / 2 ** 20,
        externalMb: metrics('nodejs_external_memory_bytes') / 2 ** 20,
        chdbMb: metrics('tandem_chdb_memory_bytes\\{what="tracked"\\}') / 2 ** 20,
        ...ready,
      });
      await sleep(2000);
    }
  })();
  const cpuBefore = cpuSeconds(pid);
  let startedAtMs = Date.now();
  const mix = await runClosedLoop(address, routes, times.seconds, (startedAt) => {
    origin = startedAt;
    startedAtMs = Date.now();
  }).finally(() => {
    sampling = false;
    rss.stop();
  });
  const cpuAfter = cpuSeconds(pid);
  await healthSampler;
  const stopped = performance.now();
  let caughtUpSeconds: number | undefined;
  while (performance.now() - stopped < 120_000) {
    if ((await api.metrics())('tandem_projector_lag_events') === 0) {
      caughtUpSeconds = (performance.now() - stopped) / 1000;
      break;
    }
    await sleep(250);
  }
  return {
    baseline,
    alone,
    mix,
    startedAtMs,
    warmup: times.warmup,
    rss: rss.samples,
    serverCpuSeconds:
      cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore,
    health,
    caughtUpSeconds,
  };
}

/**
 * Sends a few requests of each route one at a time, before any load: a
 * non-2xx here means the bench is wrong, so it stops. Their latencies are
 * each route's figure on a quiet server.
 */
async function preflight(
  address: string,
  routes: readonly LoadRoute[],
): Promise<Record<string, number[]>> {
  const alone: Record<string, number[]> = {};
  for (const route of routes) {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const request = route.next();
      const started = performance.now();
      const response = await fetch(`${address}${request.path}`, {
        method: request.method,
        headers: request.headers,
        ...(request.body === undefined ? {} : { body: request.body }),
      });
      const text = await response.text();
      times.push(performance.now() - started);
      if (!response.ok)
        throw new Error(
          `load bench preflight: ${request.method} ${request.path} answered ${response.status}: ${text.slice(0, 500)}`,
        );
    }
    alone[route.name] = times;
  }
  return alone;
}

/** The few calls the bench makes itself, outside the measured load. */
function client(address: string) {
  const call = async <T>(path: string, init: RequestInit): Promise<T> => {
    const response = await fetch(`${address}${path}`, init);
    const text = await response.text();
    if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 500)}`);
    return (response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T;
  };
  return {
    /** A key of one role, made through the API as a team would get one. */
    createKey: async (adminKey: string, role: string) =>
      (
        await call<{ token: string }>('/v1/keys', {
          method: 'POST',
          headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            name: `load bench ${role}`,
            grant: { kind: 'api', roles: [role] },
          }),
        })
      ).token,
    /** Active profiles, found as an analyst would find them. */
    profileIds: async (analystKey: string) => {
      const answer = await call<{ data: { profile_id: string }[] }>('/v1/sql', {
        method: 'POST',
        headers: { authorization: `Bearer ${analystKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          query:
            "SELECT profile_id FROM profiles WHERE status = 'active' ORDER BY cityHash64(profile_id) LIMIT 2000",
          format: 'json',
        }),
      });
      return answer.data.map((row) => row.profile_id);
    },
    /** `/readyz`: its status, and what it says when it is not ready. */
    readiness: async () => {
      const response = await fetch(`${address}/readyz`).catch(() => undefined);
      const text = (await response?.text()) ?? '';
      return {
        ready: response?.status ?? 0,
        ...(response?.ok ? {} : { detail: text.slice(0, 300) }),
      };
    },
    /** The Prometheus metrics now: a sample's value by name (NaN when absent). */
    metrics: async () => {
      const text = await call<string>('/metrics', {});
      return (name: string) =>
        Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    },
  };
}

/** The size of the LMDB files under `dir`, MB. */
async function lmdbFilesMb(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(
    entries
      .filter((entry) => entry.isFile() && entry.name.endsWith('.mdb'))
      .map(async (entry) => (await stat(join(entry.parentPath, entry.name))).size),
  );
  return sizes.reduce((sum, size) => sum + size, 0) / 2 ** 20;
}

/**
 * Closed-loop load: each route has a fixed number of workers, each with its
 * own keep-alive connection (an undici `Client`), sending its next request
 * as soon as the last one is answered — as an SDK collector, a till or a
 * person at a dashboard does. Every response is recorded (route, start,
 * latency, status), so percentiles are exact and per route, and the warm-up
 * can be cut off afterwards; a histogram tool such as autocannon would give
 * one run's aggregate per instance, warm-up included.
 *
 * Latency runs from just before the request is handed to undici to the last
 * byte of the answer read. Closed-loop load under-reports the tail when the
 * server stalls (a stalled worker sends nothing): the throughput series and
 * the max show such stalls.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Client } from 'undici';
import type { LoadRoute } from './load-traffic.js';

/** One answered (or failed) request. */
export interface LoadSample {
  /** Seconds from the start of the run to the request's start. */
  readonly at: number;
  readonly ms: number;
  /** HTTP status, or 0 when no answer came (connection error, timeout). */
  readonly status: number;
}

export interface RouteRun {
  readonly route: LoadRoute;
  readonly samples: LoadSample[];
  /** The first answer body seen for each non-2xx status or error, for the report. */
  readonly firstErrors: Map<string, string>;
}

export interface LoadRun {
  readonly routes: RouteRun[];
  /** When the run started (performance.now()). */
  readonly startedAt: number;
  readonly seconds: number;
  /** p99 of this process's event-loop delay during the run, ms: large values mean the client, not the server, set the latency. */
  readonly clientLoopDelayP99: number;
  readonly clientCpuSeconds: number;
}

const REQUEST_TIMEOUT_MS = 60_000;

/** Runs every route's workers against `address` for `seconds`; `onStart` hears the start time. */
export async function runClosedLoop(
  address: string,
  routes: readonly LoadRoute[],
  seconds: number,
  onStart: (startedAt: number) => void = () => {},
): Promise<LoadRun> {
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const cpu = process.cpuUsage();
  const runs: RouteRun[] = routes.map((route) => ({
    route,
    samples: [],
    firstErrors: new Map(),
  }));
  const clients: Client[] = [];
  const startedAt = performance.now();
  const end = startedAt + seconds * 1000;
  onStart(startedAt);
  loopDelay.enable();
  try {
    await Promise.all(
      runs.flatMap((run) =>
        Array.from({ length: run.route.workers }, async () => {
          const client = new Client(address, {
            pipelining: 1,
            headersTimeout: REQUEST_TIMEOUT_MS,
            bodyTimeout: REQUEST_TIMEOUT_MS,
          });
          clients.push(client);
          while (performance.now() < end) {
            const request = run.route.next();
            const started = performance.now();
            let status = 0;
            let text = '';
            try {
              const response = await client.request({
                method: request.method,
                path: request.path,
                headers: request.headers,
                ...(request.body === undefined ? {} : { body: request.body }),
              });
              status = response.statusCode;
              text = await response.body.text();
            } catch (error) {
              text = `${(error as { code?: string }).code ?? ''} ${(error as Error).message}`;
            }
            const ms = performance.now() - started;
            run.samples.push({ at: (started - startedAt) / 1000, ms, status });
            if (status < 200 || status >= 300) {
              const key = status === 0 ? 'no answer' : String(status);
              if (!run.firstErrors.has(key))
                run.firstErrors.set(
                  key,
                  `${request.method} ${request.path}: ${text.slice(0, 300)}`,
                );
            }
          }
        }),
      ),
    );
  } finally {
    loopDelay.disable();
    await Promise.all(clients.map((client) => client.close()));
  }
  const used = process.cpuUsage(cpu);
  return {
    routes: runs,
    startedAt,
    seconds,
    clientLoopDelayP99: loopDelay.percentile(99) / 1e6,
    clientCpuSeconds: (used.user + used.system) / 1e6,
  };
}

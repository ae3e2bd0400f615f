/**
 * Open-loop HTTP load at a steady rate, for latency at a given share of
 * peak. Request i is due at `start + i / rate` and sent then (or as soon as
 * one of the connections is free), and its latency counts from when it was
 * due, so a server falling behind shows in the figures rather than slowing
 * the load down (no coordinated omission).
 *
 * autocannon's rate limit does not give a steady rate: each connection sends
 * its quota for the second back to back as the second starts, then waits.
 * At "half the peak rate" the server takes bursts at full speed and idles in
 * between, so the latency measured is nearly the peak's.
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface PacedLoadOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** One POST body a request, sent in order. */
  readonly bodies: readonly string[];
  /** Requests a second. */
  readonly rate: number;
  /** Keep-alive connections the requests share. */
  readonly connections: number;
}

export interface PacedLoadResult {
  /** Milliseconds from when each answered request was due to its response's end. */
  readonly latencies: readonly number[];
  /** Requests answered other than 2xx, or not answered. */
  readonly errors: number;
}

/** POSTs every body at `rate` a second; resolves once all are answered. */
export async function pacedLoad(options: PacedLoadOptions): Promise<PacedLoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const sent: Promise<void>[] = [];
  try {
    for (const [i, body] of options.bodies.entries()) {
      const due = started + (i * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      sent.push(
        post(options.url, options.headers, body, agent).then(
          (status) => {
            if (status >= 200 && status < 300) latencies.push(performance.now() - due);
            else errors++;
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await Promise.all(sent);
  } finally {
    agent.destroy();
  }
  return { latencies, errors };
}

/** One POST; resolves with the status once the response has been read. */
function post(
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  agent: Agent,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

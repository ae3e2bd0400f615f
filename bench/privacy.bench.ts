/**
 * `npm run bench -- privacy`: an access export and an erasure of one person
 * with 10k events across web, app and stores, among other shoppers, on the
 * embedded stores, through the API. Targets: each under 5 s. The raw
 * baseline is reading the same person's events back from the log, measured
 * in the same run.
 */
import { loadavg } from 'node:os';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import { subjectStream } from '../privacy/personal-data.js';
import {
  ANA,
  call,
  fileAndWait,
  ingest,
  ingestScenario,
  keyWithRole,
  personInWarehouse,
  removeDataDir,
  startScenarioPlatform,
} from '../privacy/testing/erasure-scenario.js';
import type { BenchOptions } from './report.js';

const TARGET_SECONDS = 5;

export async function runPrivacyBench(options: BenchOptions = {}): Promise<string> {
  const scale = options.scale ?? 1;
  const personEvents = Math.max(100, Math.round(10_000 * scale));
  const others = Math.max(10, Math.round(2_000 * scale));
  const test = await startScenarioPlatform();
  try {
    await ingestScenario(test, { anaViews: personEvents });
    await ingestOthers(test, others);
    await test.settle();
    const officer = await keyWithRole(test, 'privacy_officer');
    const ana = await personInWarehouse(test, ANA.email);

    const readStarted = performance.now();
    let events = 0;
    for (const identifier of ana.identifiers)
      for await (const _ of readStreamIfExists(test.runtime.eventStore, subjectStream(identifier)))
        events++;
    const readSeconds = (performance.now() - readStarted) / 1000;

    const accessStarted = performance.now();
    const access = await fileAndWait(test, officer, {
      type: 'access',
      identifier: `email:${ANA.email}`,
    });
    const download = await call(test, 'GET', `/v1/privacy/requests/${access.id}/export`, officer);
    if (download.statusCode !== 200) throw new Error(`export: ${download.statusCode}`);
    const accessSeconds = (performance.now() - accessStarted) / 1000;

    const erasureStarted = performance.now();
    const erasure = await fileAndWait(test, officer, {
      type: 'erasure',
      identifier: `email:${ANA.email}`,
    });
    if (erasure.state !== 'completed')
      throw new Error(`erasure ${erasure.state}: ${erasure.error}`);
    const erasureSeconds = (performance.now() - erasureStarted) / 1000;

    const steps = erasure.steps as { step: string; at: string }[];
    const stepTimes = steps.map((step, i) => {
      const from =
        i === 0 ? Date.parse(erasure.times.received) : Date.parse(steps[i - 1]?.at ?? '');
      return `${step.step} ${Date.parse(step.at) - from} ms`;
    });
    const row = (cells: readonly string[]) =>
      `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(38) : cell.padStart(i === 3 ? 0 : 9))).join(' | ')} |`;
    const line = (name: string, seconds: number) =>
      row([
        name,
        `${seconds.toFixed(2)} s`,
        `${(seconds / readSeconds).toFixed(1)}×`,
        `${seconds < TARGET_SECONDS ? 'met' : 'NOT met'} (< ${TARGET_SECONDS} s)`,
      ]);
    return [
      `privacy: one person with ${events.toLocaleString('en')} events in the log (web, app, two stores) among ${others.toLocaleString('en')} other shoppers; embedded stores (load average ${loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')})`,
      '',
      row(['measure', 'seconds', 'vs read', 'target']),
      row(['-'.repeat(38), `${'-'.repeat(8)}:`, `${'-'.repeat(8)}:`, '------']),
      row(['read her events from the log (raw)', `${readSeconds.toFixed(2)} s`, '1.0×', '']),
      line('access: file, resolve, download zip', accessSeconds),
      line('erasure: file → completed', erasureSeconds),
      '',
      `zip: ${download.rawPayload.length.toLocaleString('en')} bytes; erasure report: ${JSON.stringify(erasure.report)}`,
      `erasure steps: ${stepTimes.join(', ')}`,
    ].join('\n');
  } finally {
    await test.stop();
    await removeDataDir(test.dataDir);
  }
}

/** Other shoppers, each browsing a little online: the tables an erasure rewrites are not only hers. */
async function ingestOthers(
  test: Awaited<ReturnType<typeof startScenarioPlatform>>,
  shoppers: number,
): Promise<void> {
  const perShopper = 20;
  const calls: object[] = [];
  for (let shopper = 0; shopper < shoppers; shopper++)
    for (let i = 0; i < perShopper; i++)
      calls.push({
        type: 'track',
        event: 'Product Viewed',
        messageId: `bench-other-${shopper}-${i}`,
        anonymousId: `bench-device-${shopper}`,
        ...(i % 5 === 0 ? { userId: `bench-user-${shopper}` } : {}),
        properties: { product_id: `sku-shoe-${1 + (i % 2)}` },
        timestamp: new Date(Date.UTC(2026, 10, 1 + (i % 20), 10, shopper % 60)).toISOString(),
      });
  for (let start = 0; start < calls.length; start += 500)
    await ingest(test, '/v1/batch', { batch: calls.slice(start, start + 500) });
}

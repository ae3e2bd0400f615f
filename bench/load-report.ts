/**
 * The load benchmark's printed report: the ratio table of `report.ts`
 * (all routes against a bare `/healthz`), a table per route, the series over
 * time (throughput, RSS), the server's log and shutdown, and the targets.
 */
import type { LoadRun, LoadSample } from './load-runner.js';
import type { RssSample, ServerExit } from './load-server.js';
import type { TrafficData } from './load-traffic.js';
import { NEW_VISITORS } from './load-traffic.js';
import { formatBenchReport, formatRate, percentile } from './report.js';

const MEMORY_LIMIT_MB = 2048;
/** Growth of the mean held memory from the middle third of the run to the last that still counts as flat. */
const FLAT_GROWTH = 0.1;

/** What the benchmark measured while the server ran. */
export interface LoadMeasurements {
  readonly baseline: LoadRun;
  /** Each route's latencies, ms, of a few requests sent one at a time before the load. */
  readonly alone: Readonly<Record<string, readonly number[]>>;
  readonly mix: LoadRun;
  /** When the mix started, epoch ms (to place the server's log lines). */
  readonly startedAtMs: number;
  /** Seconds at the start of the mix left out of the per-route figures. */
  readonly warmup: number;
  readonly rss: readonly RssSample[];
  readonly serverCpuSeconds: number | undefined;
  /** The resolver's and the projector's lag and `/readyz`, every 2 s during the mix. */
  readonly health: readonly HealthSample[];
  /** Seconds after the traffic stopped until the projector had no lag; undefined if not within 120 s. */
  readonly caughtUpSeconds: number | undefined;
}

export interface HealthSample {
  /** Seconds since the mix started. */
  readonly at: number;
  /** The projector's lag. */
  readonly lagEvents: number;
  readonly lagSeconds: number;
  /** The resolver's lag. */
  readonly resolverLagEvents: number;
  readonly resolverLagSeconds: number;
  /** The status `/readyz` answered (0: no answer), and its body when not 200. */
  readonly ready: number;
  readonly detail?: string;
  /** The server's JS heap in use (`nodejs_heap_size_used_bytes`), MB. */
  readonly heapMb: number;
  /** The server's JS heap as allocated from the system (`nodejs_heap_size_total_bytes`), MB. */
  readonly heapTotalMb: number;
  /** Memory outside the JS heap held by JS objects, Buffers among them (`nodejs_external_memory_bytes`), MB. */
  readonly externalMb: number;
  /** What chDB tracks of its own memory (`tandem_chdb_memory_bytes{what="tracked"}`), MB. */
  readonly chdbMb: number;
}

export interface LoadReportInput extends LoadMeasurements {
  readonly exit: ServerExit;
  /** The server's log lines (`readLogLines`). */
  readonly log: readonly Record<string, unknown>[];
  readonly shoppers: number;
  readonly data: TrafficData;
  readonly setupSeconds: number;
  /** Size of the data directory's LMDB files at the end, MB. */
  readonly dataFilesMb: number;
}

/** Whether the server stopped as it should on SIGTERM: exit 0 in time, "stopped" last, no error logged. */
export function shutdownClean(exit: ServerExit, log: readonly Record<string, unknown>[]): boolean {
  return (
    exit.code === 0 &&
    !exit.killed &&
    log[log.length - 1]?.msg === 'stopped' &&
    !log.some((line) => Number(line.level) >= 50)
  );
}

export function formatLoadReport(input: LoadReportInput): string {
  const { mix, baseline, warmup } = input;
  const window = mix.seconds - warmup;
  const connections = mix.routes.reduce((sum, run) => sum + run.route.workers, 0);
  const answered = mix.routes.flatMap((run) => afterWarmup(run.samples, warmup, mix.seconds));
  const healthz = baseline.routes[0]?.samples ?? [];
  const table = formatBenchReport(
    `load: ${mix.seconds} s of mixed traffic (the first ${warmup} s warm-up) on one \`tandem demo\` process, ${input.shoppers.toLocaleString('en-US')} shoppers, ${connections} closed-loop connections`,
    [
      {
        name: 'requests answered 2xx, all routes',
        unit: 'req/s',
        ours: answered.filter(ok).length / window,
        raw: healthz.filter(ok).length / baseline.seconds,
      },
    ],
  );
  const [p50, p99] = latency(healthz);
  const statuses = countStatuses(mix.routes.flatMap((run) => run.samples));
  const fiveXx = sumWhere(statuses, (status) => status >= 500 || status === 0);
  const fourXx = sumWhere(statuses, (status) => status >= 400 && status < 500);
  const memory = rssFigures(input.rss, warmup, mix.seconds);
  const clean = shutdownClean(input.exit, input.log);
  return [
    table,
    `raw = GET /healthz on the same server, the same ${connections} connections, ${baseline.seconds} s just before the mix (p50 ${p50} ms, p99 ${p99} ms): its HTTP layer doing nothing.`,
    '',
    'per route, after the warm-up (req/s counts 2xx answers; latency is over every answer; alone: the median of 5 requests one at a time before the load):',
    routeTable(input),
    ...firstErrors(mix),
    '',
    ...seriesLines(input, memory),
    ...serverLines(input),
    `target zero 5xx (nor unanswered requests): ${fiveXx} — ${fiveXx === 0 ? 'met' : 'NOT met'}`,
    `target no 4xx (a 4xx means the bench sent a bad request): ${fourXx} — ${fourXx === 0 ? 'met' : 'NOT met'}`,
    `target memory under ${formatRate(MEMORY_LIMIT_MB)} MB (RSS without the data directory's maps): max ${formatRate(memory.maxHeld)} MB — ${memory.maxHeld < MEMORY_LIMIT_MB ? 'met' : 'NOT met'}`,
    `target memory flat after warm-up (mean held memory of the last third ${signed(memory.heldTrend.share * 100, 1)}% against the middle third, < ${FLAT_GROWTH * 100}%): ${formatRate(memory.heldTrend.middle)} → ${formatRate(memory.heldTrend.last)} MB — ${memory.heldTrend.share < FLAT_GROWTH ? 'met' : 'NOT met'}`,
    `target clean shutdown (exit 0 on SIGTERM, "stopped" logged, no error-level line): ${clean ? 'met' : 'NOT met'}`,
  ].join('\n');
}

function routeTable(input: LoadReportInput): string {
  const { mix, warmup } = input;
  const window = mix.seconds - warmup;
  const rows = mix.routes.map((run) => {
    const measured = afterWarmup(run.samples, warmup, mix.seconds);
    const good = measured.filter(ok).length;
    const units = run.route.units;
    const bad = [...countStatuses(run.samples)].sort(([a], [b]) => a - b);
    return [
      run.route.name,
      String(run.route.workers),
      median(input.alone[run.route.name] ?? []),
      formatRate(good / window),
      units ? `${formatRate((good * units.each) / window)} ${units.name}/s` : '',
      ...latency(measured),
      bad.length === 0
        ? '0'
        : bad.map(([status, n]) => `${status === 0 ? 'no answer' : status}×${n}`).join(' '),
    ];
  });
  return columns(
    [
      'route',
      'workers',
      'alone ms',
      'req/s',
      'carrying',
      'p50 ms',
      'p99 ms',
      'max ms @start',
      'non-2xx (whole run)',
    ],
    rows,
  );
}

function firstErrors(mix: LoadRun): string[] {
  const lines = mix.routes.flatMap((run) =>
    [...run.firstErrors].map(([status, text]) => `  ${status}: ${text}`),
  );
  return lines.length > 0 ? ['the first answer of each non-2xx status:', ...lines] : [];
}

type GrowthKey = 'heldMb' | 'anonMb' | 'dataMapsMb';

interface RssFigures {
  readonly at: (seconds: number) => RssSample | undefined;
  /** The largest RSS and held memory after the mix began, MB. */
  readonly max: number;
  readonly maxHeld: number;
  /** Each measure's change from the end of warm-up to the end, MB. */
  readonly growth: Readonly<Record<GrowthKey, number>>;
  /** Mean held memory of the run's last third against its middle third: still growing, or settled. */
  readonly heldTrend: { readonly middle: number; readonly last: number; readonly share: number };
}

function rssFigures(rss: readonly RssSample[], warmup: number, seconds: number): RssFigures {
  const at = (time: number) =>
    [...rss].reverse().find((sample) => sample.at <= time + 0.5) ?? rss[0];
  const warm = at(warmup);
  const last = rss[rss.length - 1];
  const change = (key: GrowthKey) => (warm && last ? last[key] - warm[key] : Number.NaN);
  const during = rss.filter((sample) => sample.at >= 0);
  // Means over thirds, not two samples: the JS heap alone swings by 300 MB between collections.
  const meanHeld = (from: number, to: number) => {
    const window = during.filter((sample) => sample.at >= from && sample.at < to);
    return window.reduce((sum, sample) => sum + sample.heldMb, 0) / window.length;
  };
  const middle = meanHeld(seconds / 3, (2 * seconds) / 3);
  const lastThird = meanHeld((2 * seconds) / 3, seconds + 1);
  return {
    at,
    max: Math.max(...during.map((sample) => sample.mb)),
    maxHeld: Math.max(...during.map((sample) => sample.heldMb)),
    growth: {
      heldMb: change('heldMb'),
      anonMb: change('anonMb'),
      dataMapsMb: change('dataMapsMb'),
    },
    heldTrend: { middle, last: lastThird, share: lastThird / middle - 1 },
  };
}

/** Throughput and RSS every 10 s (shorter steps for a short run), CPU, the projector's and the resolver's lag. */
function seriesLines(input: LoadReportInput, memory: RssFigures): string[] {
  const { mix, warmup, health } = input;
  const step = mix.seconds >= 30 ? 10 : Math.max(1, Math.round(mix.seconds / 6));
  const marks = Array.from({ length: Math.floor(mix.seconds / step) + 1 }, (_, i) => i * step);
  const good = mix.routes.flatMap((run) => run.samples.filter(ok));
  const rates = marks
    .slice(0, -1)
    .map((mark) => good.filter((s) => s.at >= mark && s.at < mark + step).length / step);
  const mb = (pick: (sample: RssSample) => number) =>
    marks.map((mark) => {
      const sample = memory.at(mark);
      return sample ? formatRate(pick(sample)) : '?';
    });
  const cores = (seconds: number | undefined) =>
    seconds === undefined ? 'n/a' : (seconds / mix.seconds).toFixed(2);
  return [
    `throughput, 2xx req/s of all routes per ${step} s: ${rates.map(formatRate).join(' ')}`,
    `server memory, MB at ${marks.join('/')} s:`,
    `  RSS                                   ${mb((s) => s.mb).join(' ')}`,
    `  held: RSS without the data dir's maps ${mb((s) => s.heldMb).join(' ')}`,
    `    of which anonymous (heaps)          ${mb((s) => s.anonMb).join(' ')}`,
    `    of which JS heap, allocated         ${marks.map((mark) => mbAt(health, mark, 'heapTotalMb')).join(' ')}`,
    `      in use                            ${marks.map((mark) => mbAt(health, mark, 'heapMb')).join(' ')}`,
    `    of which external (Buffers…)        ${marks.map((mark) => mbAt(health, mark, 'externalMb')).join(' ')}`,
    `    of which chDB's tracked memory      ${marks.map((mark) => mbAt(health, mark, 'chdbMb')).join(' ')}`,
    `  data dir's maps (LMDB pages)          ${mb((s) => s.dataMapsMb).join(' ')}`,
    `  max RSS ${formatRate(memory.max)} MB, held ${formatRate(memory.maxHeld)} MB; from the end of warm-up (${warmup} s) to the end: held ${signed(memory.growth.heldMb)} MB, anonymous ${signed(memory.growth.anonMb)} MB, data dir's maps ${signed(memory.growth.dataMapsMb)} MB`,
    `  the data dir's maps are the pages of its LMDB files (${formatRate(input.dataFilesMb)} MB at the end) the server read or wrote: the kernel's page cache of the log, clean, given back under memory pressure, growing with the log`,
    `server CPU during the mix: ${cores(input.serverCpuSeconds)} cores; the load generator ${cores(mix.clientCpuSeconds)} cores, its event-loop delay p99 ${mix.clientLoopDelayP99.toFixed(1)} ms`,
    `projector lag s at ${marks.join('/')} s: ${marks.map((mark) => lagAt(health, mark)).join(' ')}; max ${formatRate(Math.max(0, ...health.map((h) => h.lagEvents)))} events, ${Math.max(0, ...health.map((h) => h.lagSeconds)).toFixed(1)} s; ${input.caughtUpSeconds === undefined ? 'NOT caught up within 120 s' : `caught up ${input.caughtUpSeconds.toFixed(1)} s`} after the traffic stopped`,
    `resolver lag: max ${formatRate(Math.max(0, ...health.map((h) => h.resolverLagEvents)))} events, ${Math.max(0, ...health.map((h) => h.resolverLagSeconds)).toFixed(1)} s`,
    readiness(health),
  ];
}

type HealthMb = 'heapMb' | 'heapTotalMb' | 'externalMb' | 'chdbMb';

/** The last health sample taken by `seconds` into the mix (the first, before any). */
function healthAt(health: readonly HealthSample[], seconds: number): HealthSample | undefined {
  return [...health].reverse().find((h) => h.at <= seconds + 1) ?? health[0];
}

function mbAt(health: readonly HealthSample[], seconds: number, key: HealthMb): string {
  const sample = healthAt(health, seconds);
  return sample && Number.isFinite(sample[key]) ? formatRate(sample[key]) : '?';
}

function lagAt(health: readonly HealthSample[], seconds: number): string {
  const sample = healthAt(health, seconds);
  return sample ? sample.lagSeconds.toFixed(1) : '?';
}

/** What `/readyz` answered during the mix: a load balancer would stop sending to a 503. */
function readiness(health: readonly HealthSample[]): string {
  const notReady = health.filter((h) => h.ready !== 200);
  const first = notReady[0];
  return first
    ? `GET /readyz during the mix: ${notReady.length} of ${health.length} samples not 200, the first at ${first.at.toFixed(0)} s (${first.ready}: ${first.detail ?? ''})`
    : `GET /readyz during the mix: 200 in all ${health.length} samples`;
}

/** The server's log (errors in full, warnings by message), its shutdown, and how it was set up. */
function serverLines(input: LoadReportInput): string[] {
  const { log, exit } = input;
  const errors = log.filter((line) => Number(line.level) >= 50);
  const warnings = log.filter((line) => Number(line.level) === 40);
  const notJson = log.filter((line) => 'text' in line);
  const last = log[log.length - 1];
  const end = input.startedAtMs + input.mix.seconds * 1000;
  const during = log.filter(
    (line) => Number(line.time) >= input.startedAtMs && Number(line.time) <= end,
  );
  const ended = exit.killed
    ? `did not exit within 120 s, killed`
    : `${exit.signal ? `ended by signal ${exit.signal}` : `exit code ${exit.code}`} in ${exit.seconds.toFixed(1)} s`;
  return [
    `server log: ${errors.length} error-level line(s), ${warnings.length} warning(s)${notJson.length > 0 ? `, ${notJson.length} line(s) that are not JSON` : ''}`,
    ...distinct([...errors, ...notJson]).map((line) => `  ${line}`),
    ...(warnings.length > 0 ? [`  warnings: ${distinct(warnings).join('; ')}`] : []),
    `  during the mix: ${
      during.length === 0
        ? 'no line'
        : during
            .slice(0, 10)
            .map(
              (line) =>
                `${((Number(line.time) - input.startedAtMs) / 1000).toFixed(0)} s ${line.part ? `${line.part}: ` : ''}${String(line.msg)}${line.tookMs ? ` (${line.tookMs} ms)` : ''}`,
            )
            .join('; ')
    }`,
    `shutdown on SIGTERM: ${ended}, last log line "${String(last?.msg ?? last?.text ?? '')}"`,
    `setup: the demo chain generated, loaded through the API and projected, /readyz 200 after ${input.setupSeconds.toFixed(0)} s; replayed tracking calls ${(input.data.identifiedShare * 100).toFixed(0)}% identified, new anonymous ids in ${NEW_VISITORS * 100}% of the batches`,
  ];
}

function afterWarmup(samples: readonly LoadSample[], warmup: number, seconds: number) {
  return samples.filter((sample) => sample.at >= warmup && sample.at < seconds);
}

function ok(sample: LoadSample): boolean {
  return sample.status >= 200 && sample.status < 300;
}

function countStatuses(samples: readonly LoadSample[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const sample of samples)
    if (!ok(sample)) counts.set(sample.status, (counts.get(sample.status) ?? 0) + 1);
  return counts;
}

function sumWhere(counts: Map<number, number>, match: (status: number) => boolean): number {
  return [...counts].reduce((sum, [status, n]) => sum + (match(status) ? n : 0), 0);
}

/** p50, p99 and max in ms, as printed; the max with the second of the run its request started in, to match stalls with the log. */
function latency(samples: readonly LoadSample[]): string[] {
  if (samples.length === 0) return ['-', '-', '-'];
  const ms = samples.map((sample) => sample.ms);
  // Math.max(...ms) would overflow the stack on a /healthz run's many samples.
  const slowest = samples.reduce((a, b) => (b.ms > a.ms ? b : a));
  const [p50, p99] = [percentile(ms, 0.5), percentile(ms, 0.99)].map(milliseconds);
  return [p50 as string, p99 as string, `${milliseconds(slowest.ms)} @${slowest.at.toFixed(0)}s`];
}

function milliseconds(value: number): string {
  return value.toFixed(value < 10 ? 1 : 0);
}

/** The median of a route's latencies alone, as printed. */
function median(ms: readonly number[]): string {
  if (ms.length === 0) return '-';
  return milliseconds(percentile(ms, 0.5));
}

/** Distinct log messages with their counts, most frequent first. */
function distinct(lines: readonly Record<string, unknown>[]): string[] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    const err = line.err as { message?: string } | undefined;
    const text =
      `${String(line.text ?? line.msg ?? '')}${err?.message ? ` (${err.message})` : ''}`.slice(
        0,
        300,
      );
    counts.set(text, (counts.get(text) ?? 0) + 1);
  }
  return [...counts]
    .sort(([, a], [, b]) => b - a)
    .map(([text, n]) => (n > 1 ? `${n}× ${text}` : text));
}

function signed(value: number, digits = 0): string {
  return `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;
}

function columns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((cell, i) =>
    Math.max(cell.length, ...rows.map((row) => (row[i] as string).length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) =>
        i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number),
      )
      .join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join(
    '\n',
  );
}

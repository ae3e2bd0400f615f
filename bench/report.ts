import { loadavg } from 'node:os';

export interface BenchOptions {
  /** Multiplies the amount of work, e.g. 0.01 for a quick smoke run; 1 for the real measurement. */
  readonly scale?: number;
}

/** One line of a benchmark table: our figure against the raw limit measured in the same run. */
export interface BenchRow {
  readonly name: string;
  readonly unit: string;
  readonly ours: number;
  readonly raw: number;
}

/** A target a benchmark states: which row, the least ratio and the least absolute figure. */
export interface BenchTarget {
  readonly row: string;
  readonly minRatio?: number;
  readonly minOurs?: number;
}

/** Formats rows as a table with a `ratio` column (ours / raw) and checks the targets. */
export function formatBenchReport(
  title: string,
  rows: readonly BenchRow[],
  targets: readonly BenchTarget[] = [],
): string {
  const header = ['measure', 'ours', 'raw', 'ratio'];
  const body = rows.map((row) => [
    row.name,
    `${formatRate(row.ours)} ${row.unit}`,
    `${formatRate(row.raw)} ${row.unit}`,
    (row.ours / row.raw).toFixed(2),
  ]);
  const widths = header.map((cell, i) =>
    Math.max(cell.length, ...body.map((line) => (line[i] as string).length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) =>
        i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number),
      )
      .join('  ');
  const lines = [
    `${title} — load average ${loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')} on this machine`,
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...body.map(line),
  ];
  for (const target of targets) {
    const row = rows.find((candidate) => candidate.name === target.row);
    if (!row) continue;
    const ratio = row.ours / row.raw;
    const ok =
      (target.minRatio === undefined || ratio >= target.minRatio) &&
      (target.minOurs === undefined || row.ours >= target.minOurs);
    const wants = [
      target.minRatio !== undefined ? `ratio >= ${target.minRatio}` : '',
      target.minOurs !== undefined ? `>= ${formatRate(target.minOurs)} ${row.unit}` : '',
    ].filter(Boolean);
    lines.push(`target ${target.row}: ${wants.join(' and ')} — ${ok ? 'met' : 'NOT met'}`);
  }
  return lines.join('\n');
}

/** A rate with thousands separators, rounded. */
export function formatRate(value: number): string {
  // A rate below 10 (0.48 previews/s) would round to nothing.
  if (!Number.isInteger(value) && Math.abs(value) < 10) return value.toFixed(2);
  return Math.round(value).toLocaleString('en-US');
}

/** The median of a list of numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The value below which a share `q` (0–1) of the values fall (nearest rank). */
export function percentile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * q) - 1))
  ] as number;
}

/** A positive whole number from the environment variable `name`, or undefined when it is unset or empty. */
export function fromEnv(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!(Number.isInteger(value) && value > 0))
    throw new Error(`${name} must be a positive whole number, got "${text}"`);
  return value;
}

/**
 * Bulk import of receipts with a report. `strict` (the default) imports
 * nothing when any row is bad: a first pass validates the whole file, a
 * second ingests it. `lenient` ingests the good rows in one pass and reports
 * the bad ones. Either way memory holds one chunk of receipts at a time.
 */
import type { FieldIssue } from '../../schemas/errors.js';
import type { PosReceipt } from '../../schemas/pos.js';
import type { Ingestor } from '../ingestor.js';
import type { ImportItem, ItemPosition } from './import-items.js';

export type ImportMode = 'strict' | 'lenient';

export interface ImportError extends ItemPosition, FieldIssue {}

export interface ImportReport {
  readonly mode: ImportMode;
  /** Receipts now in the log. */
  readonly accepted: number;
  /** Receipts dropped because an identifier on them is suppressed. */
  readonly suppressed: number;
  /** Bad receipts or rows (all of them, counted). */
  readonly rejected: number;
  /** The first errors, with where they were and why. */
  readonly errors: readonly ImportError[];
}

export interface ImportOptions {
  readonly mode: ImportMode;
  readonly sourceId: string;
  readonly chunkSize?: number;
  readonly maxErrors?: number;
  /** Hears how many items (receipts or bad rows) each pass has read. */
  readonly onProgress?: (itemsRead: number, pass: 'validate' | 'import') => void;
}

/** Imports the items `open()` yields; `open` is called once per pass. */
export async function importReceipts(
  open: () => AsyncIterable<ImportItem>,
  ingestor: Ingestor,
  options: ImportOptions,
): Promise<ImportReport> {
  const maxErrors = options.maxErrors ?? 1000;
  const chunkSize = options.chunkSize ?? 500;
  const errors: ImportError[] = [];
  let rejected = 0;
  const note = (item: Extract<ImportItem, { kind: 'error' }>) => {
    rejected++;
    for (const issue of item.issues)
      if (errors.length < maxErrors) errors.push({ ...item.at, ...issue });
  };

  if (options.mode === 'strict') {
    let read = 0;
    for await (const item of open()) {
      if (item.kind === 'error') note(item);
      if (++read % 10_000 === 0) options.onProgress?.(read, 'validate');
    }
    if (rejected > 0) return { mode: 'strict', accepted: 0, suppressed: 0, rejected, errors };
  }

  let accepted = 0;
  let suppressed = 0;
  let chunk: PosReceipt[] = [];
  let read = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const result = await ingestor.receipts(chunk, Date.now(), options.sourceId);
    accepted += result.accepted;
    suppressed += result.suppressed;
    chunk = [];
  };
  for await (const item of open()) {
    if (item.kind === 'error') note(item);
    else chunk.push(item.receipt);
    if (chunk.length >= chunkSize) await flush();
    if (++read % 10_000 === 0) options.onProgress?.(read, 'import');
  }
  await flush();
  return { mode: options.mode, accepted, suppressed, rejected, errors };
}

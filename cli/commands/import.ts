import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError } from 'commander';
import {
  IMPORT_FORMATS,
  type ImportFormat,
  readImportItems,
} from '../../ingest/import/import-items.js';
import { type ImportMode, importReceipts } from '../../ingest/import/importer.js';
import { openRuntime } from '../runtime.js';
import { openIngest } from '../stores.js';

const BY_EXTENSION: Readonly<Record<string, ImportFormat>> = {
  '.ndjson': 'ndjson',
  '.jsonl': 'ndjson',
  '.csv': 'csv',
  '.arrows': 'arrow',
  '.arrow': 'arrow',
  '.parquet': 'parquet',
};

/** `tandem import FILE`: what `POST /v1/imports` does, from the command line, on the configured stores. */
export function registerImportCommand(program: Command): void {
  program
    .command('import')
    .description(
      'import a file of POS receipts (NDJSON, CSV, Arrow IPC stream or Parquet) into the log',
    )
    .argument('<file>', 'the file; its format comes from the extension unless --format says')
    .option('--format <format>', `one of ${IMPORT_FORMATS.join(', ')}`, format)
    .option(
      '--mode <mode>',
      'strict (import nothing if a row is bad) or lenient (import the good rows)',
      mode,
      'strict',
    )
    .option('--source <id>', 'the POS source the receipts come from', 'import')
    .action(
      async (
        file: string,
        options: { format?: ImportFormat; mode: ImportMode; source: string },
      ) => {
        const chosen = options.format ?? BY_EXTENSION[extname(file).toLowerCase()];
        if (!chosen)
          program.error(
            `cannot tell the format of ${file}: use --format (${IMPORT_FORMATS.join(', ')})`,
          );
        await stat(file);
        const runtime = await openRuntime();
        const ingest = await openIngest(runtime);
        const bar = process.stderr.isTTY
          ? new SingleBar({ format: '{pass} {value} items read', hideCursor: true })
          : undefined;
        bar?.start(0, 0, { pass: options.mode === 'strict' ? 'validate' : 'import' });
        try {
          const report = await importReceipts(
            () => readImportItems(file, chosen as ImportFormat),
            ingest.ingestor,
            {
              mode: options.mode,
              sourceId: options.source,
              onProgress: (read, pass) => {
                bar?.setTotal(read);
                bar?.update(read, { pass });
              },
            },
          );
          bar?.stop();
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          if (report.mode === 'strict' && report.rejected > 0) process.exitCode = 1;
        } finally {
          bar?.stop();
          await ingest.close();
          await runtime.close();
        }
      },
    );
}

function format(text: string): ImportFormat {
  if (!(IMPORT_FORMATS as readonly string[]).includes(text))
    throw new InvalidArgumentError(`--format must be one of ${IMPORT_FORMATS.join(', ')}`);
  return text as ImportFormat;
}

function mode(text: string): ImportMode {
  if (text !== 'strict' && text !== 'lenient')
    throw new InvalidArgumentError('--mode must be strict or lenient');
  return text;
}

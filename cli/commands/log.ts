import { type Command, InvalidArgumentError } from 'commander';
import { formatPosition, parsePosition, type RecordedEvent } from '../../eventstore/event-store.js';
import { openRuntime } from '../runtime.js';

/** `tandem log read|tail`: look at the event log as NDJSON, one event a line. */
export function registerLogCommands(program: Command): void {
  const log = program
    .command('log')
    .description('read and follow the event log (NDJSON on stdout)');

  log
    .command('read')
    .description('print events of one stream, or of the whole log in position order')
    .option('--stream <name>', 'read this stream only')
    .option('--from <position>', 'first log position (COMMIT/PREPARE), inclusive')
    .option('--limit <count>', 'at most this many events', parseCount)
    .option('--backwards', 'newest first')
    .action(
      async (options: { stream?: string; from?: string; limit?: number; backwards?: boolean }) => {
        const runtime = await openRuntime();
        try {
          const direction = options.backwards ? 'backwards' : 'forwards';
          const events = options.stream
            ? runtime.eventStore.readStream(options.stream, { direction, ...limit(options.limit) })
            : runtime.eventStore.readAll({
                direction,
                ...limit(options.limit),
                ...(options.from ? { from: parsePosition(options.from) } : {}),
              });
          for await (const event of events) await write(event);
        } finally {
          await runtime.close();
        }
      },
    );

  log
    .command('tail')
    .description('print events as they are appended, by any process (Ctrl-C to stop)')
    .option('--from <position>', 'start after this log position instead of at the end')
    .action(async (options: { from?: string }) => {
      const runtime = await openRuntime();
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop).once('SIGTERM', stop);
      try {
        const from = options.from ? parsePosition(options.from) : 'end';
        for await (const event of runtime.eventStore.subscribeAll({
          from,
          signal: controller.signal,
        }))
          await write(event);
      } finally {
        await runtime.close();
      }
    });
}

function limit(maxCount: number | undefined) {
  return maxCount === undefined ? {} : { maxCount };
}

function parseCount(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`--limit must be a positive integer, got "${text}"`);
  }
  return value;
}

/** Writes one event as a JSON line, waiting when stdout is full. */
async function write(event: RecordedEvent): Promise<void> {
  const line = `${JSON.stringify({ ...event, position: formatPosition(event.position) })}\n`;
  if (!process.stdout.write(line))
    await new Promise((resolve) => process.stdout.once('drain', resolve));
}

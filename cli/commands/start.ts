import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { formatPosition } from '../../eventstore/event-store.js';
import { openRuntime } from '../runtime.js';
import { packageVersion } from '../version.js';

/** The stream where the platform records its own life cycle. */
export const SYSTEM_STREAM = 'tandem-system';

/**
 * `tandem start` (what `npm start` runs): opens the configured stores, records
 * the start in the log, and follows the log — logging each new event — until
 * SIGINT or SIGTERM, when it records the stop and closes the stores cleanly.
 * The HTTP server and the demo data join this command as they are built.
 */
export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('run the platform on the configured stores (embedded by default) until stopped')
    .action(async () => {
      const runtime = await openRuntime();
      const { logger, eventStore, config } = runtime;
      const controller = new AbortController();
      const stop = (signal: NodeJS.Signals) => {
        logger.info({ signal }, 'stopping');
        controller.abort();
      };
      process.once('SIGINT', stop).once('SIGTERM', stop);

      const started = await eventStore.append(SYSTEM_STREAM, [systemEvent('system.started')]);
      const head = await eventStore.headPosition();
      logger.info(
        {
          version: packageVersion(),
          eventStore: eventStore.kind,
          dataDir: config.eventStore.kind === 'lmdb' ? config.dataDir : undefined,
          head: head && formatPosition(head),
        },
        'Tandem is running; following the event log (Ctrl-C to stop)',
      );
      try {
        for await (const event of eventStore.subscribeAll({
          from: started.position,
          signal: controller.signal,
        })) {
          logger.info(
            {
              position: formatPosition(event.position),
              stream: event.stream,
              type: event.type,
              id: event.id,
            },
            'event appended',
          );
        }
        await eventStore.append(SYSTEM_STREAM, [systemEvent('system.stopped')]);
      } finally {
        await runtime.close();
      }
      logger.info('stopped');
    });
}

function systemEvent(type: string) {
  return {
    id: randomUUID(),
    type,
    data: { version: packageVersion(), pid: process.pid, at: new Date().toISOString() },
  };
}

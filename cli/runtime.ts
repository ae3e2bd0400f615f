import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { EventStore } from '../eventstore/event-store.js';
import { openEventStore } from '../eventstore/open-event-store.js';
import { type Config, loadConfig } from '../schemas/config.js';
import { createLogger } from './logger.js';

/** What a command needs to run: settings, a logger, and the configured event store. */
export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly eventStore: EventStore;
  close(): Promise<void>;
}

/** Reads the configuration and opens the stores it names (embedded LMDB unless a URL is set). */
export async function openRuntime(env: NodeJS.ProcessEnv = process.env): Promise<Runtime> {
  const config = loadConfig(env);
  const logger = createLogger(config.log);
  if (config.eventStore.kind === 'lmdb') await mkdir(config.eventStore.path, { recursive: true });
  const eventStore = await openEventStore(config.eventStore);
  logger.debug({ eventStore: eventStore.kind }, 'event store open');
  return {
    config,
    logger,
    eventStore,
    close: () => eventStore.close(),
  };
}

import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { EventStore } from '../eventstore/event-store.js';
import { openEventStore } from '../eventstore/open-event-store.js';
import { loadIdentityRules } from '../identity/rules.js';
import { type Config, loadConfig } from '../schemas/config.js';
import type { IdentityRules } from '../schemas/identity.js';
import { createLogger } from './logger.js';

/** What a command needs to run: settings, a logger, and the configured event store. */
export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly eventStore: EventStore;
  /** What may be linked into one profile (identity rules). */
  readonly identityRules: IdentityRules;
  close(): Promise<void>;
}

/** Reads the configuration and opens the stores it names (embedded LMDB unless a URL is set). */
export async function openRuntime(env: NodeJS.ProcessEnv = process.env): Promise<Runtime> {
  const config = loadConfig(env);
  const logger = createLogger(config.log);
  const identityRules = await loadIdentityRules(config.identityRulesFile);
  if (config.eventStore.kind === 'lmdb') await mkdir(config.eventStore.path, { recursive: true });
  const eventStore = await openEventStore(config.eventStore);
  logger.debug({ eventStore: eventStore.kind }, 'event store open');
  return {
    config,
    logger,
    eventStore,
    identityRules,
    close: () => eventStore.close(),
  };
}

/** Runs `run` with a runtime from the environment, closing it afterwards. */
export async function withRuntime(run: (runtime: Runtime) => Promise<void>): Promise<void> {
  const runtime = await openRuntime();
  try {
    await run(runtime);
  } finally {
    await runtime.close();
  }
}

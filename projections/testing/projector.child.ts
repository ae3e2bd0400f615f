/**
 * Child process for the crash test: projects the log at argv[2] into the
 * chDB directory argv[3] (database argv[4]) in small batches, logging each
 * written batch as a JSON line on stdout, until it is killed or caught up.
 */
import { pino } from 'pino';
import { openLmdbEventStore } from '../../eventstore/event-store.lmdb.js';
import { DEFAULT_IDENTITY_RULES } from '../../schemas/identity.js';
import { openWarehouse } from '../../warehouse/warehouse.js';
import { openProjector } from '../projector.js';

const [logPath, chdbPath, database] = process.argv.slice(2);
if (!logPath || !chdbPath || !database) {
  process.stderr.write('usage: projector.child.ts LOG_DIR CHDB_DIR DATABASE\n');
  process.exit(2);
}
const eventStore = await openLmdbEventStore({ path: logPath });
const warehouse = await openWarehouse({ target: { kind: 'chdb', path: chdbPath }, database });
const projector = await openProjector({
  eventStore,
  warehouse,
  priority: DEFAULT_IDENTITY_RULES.priority,
  batchEvents: 40,
  flushMs: 5,
  log: pino({ level: 'debug' }),
});
await projector.catchUp();
await warehouse.close();
await eventStore.close();

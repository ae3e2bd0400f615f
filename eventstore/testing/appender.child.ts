/**
 * Child process for the multi-process tests. Opens the store named by the
 * spec in argv[2] and appends batches to the stream in argv[3], printing one
 * `ack REVISION ID,ID,…` line per acknowledged append.
 *
 * Modes (argv[5]):
 * - `forever` (default): appends with exact expected revisions until killed —
 *   the SIGKILL durability test kills it right after an ack.
 * - `contend:N`: appends N batches to a stream other processes also write,
 *   optimistically: on a version conflict it rereads the stream's revision
 *   and tries again. Exits 0 after N acks.
 */
import { randomUUID } from 'node:crypto';
import { type ExpectedState, WrongExpectedVersionError } from '../event-store.js';
import { type EventStoreSpec, openEventStore } from '../open-event-store.js';

const [specJson, stream, batchSizeText = '10', mode = 'forever'] = process.argv.slice(2);
if (!specJson || !stream) {
  process.stderr.write(
    'usage: appender.child.ts SPEC_JSON STREAM [BATCH_SIZE] [forever|contend:N]\n',
  );
  process.exit(2);
}
const store = await openEventStore(JSON.parse(specJson) as EventStoreSpec);
const batchSize = Number(batchSizeText);
const batches = mode.startsWith('contend:')
  ? Number(mode.slice('contend:'.length))
  : Number.POSITIVE_INFINITY;
let expected: ExpectedState = mode === 'forever' ? 'no_stream' : 'any';

for (let batch = 0; batch < batches; ) {
  const events = Array.from({ length: batchSize }, (_, i) => ({
    id: randomUUID(),
    type: 'durability.probe',
    data: { pid: process.pid, batch, index: i },
  }));
  try {
    const result = await store.append(stream, events, { expected });
    process.stdout.write(
      `ack ${result.nextExpectedRevision} ${events.map((event) => event.id).join(',')}\n`,
    );
    expected = result.nextExpectedRevision;
    batch++;
  } catch (error) {
    if (!(error instanceof WrongExpectedVersionError) || mode === 'forever') throw error;
    expected = error.actual === 'no_stream' ? 'no_stream' : error.actual;
  }
}
await store.close();

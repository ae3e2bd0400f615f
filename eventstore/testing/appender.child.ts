/**
 * Child process for the durability test: opens the store named by the spec in
 * argv[2], appends batches to the stream in argv[3] until it is killed, and
 * prints one `ack` line per acknowledged append with the ids it made durable.
 */
import { randomUUID } from 'node:crypto';
import { type EventStoreSpec, openEventStore } from '../open-event-store.js';

const [specJson, stream, batchSizeText = '10'] = process.argv.slice(2);
if (!specJson || !stream) {
  process.stderr.write('usage: appender.child.ts SPEC_JSON STREAM [BATCH_SIZE]\n');
  process.exit(2);
}
const store = await openEventStore(JSON.parse(specJson) as EventStoreSpec);
const batchSize = Number(batchSizeText);
for (let batch = 0; ; batch++) {
  const events = Array.from({ length: batchSize }, (_, i) => ({
    id: randomUUID(),
    type: 'durability.probe',
    data: { batch, index: i },
  }));
  const result = await store.append(stream, events, {
    expected: batch === 0 ? 'no_stream' : batch * batchSize - 1,
  });
  process.stdout.write(
    `ack ${result.nextExpectedRevision} ${events.map((event) => event.id).join(',')}\n`,
  );
}

/**
 * The steady ingest load of the projections benchmark, in a process of its
 * own, as `tandem serve --parts ingest` beside the projector's process would
 * be: it opens the log its spec names (JSON), and appends copies
 * of the log's facts (new ids) at a steady rate in 50 ms ticks. In the
 * projector's process the appends shared its one JavaScript thread and the
 * load fell short of its rate. Prints `{ appended, seconds }` as JSON.
 *
 * Usage: projections-load.child.js EVENT_STORE_SPEC_JSON EVENTS_PER_SECOND SECONDS
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventData, RecordedEvent } from '../eventstore/event-store.js';
import { type EventStoreSpec, openEventStore } from '../eventstore/open-event-store.js';
import { PROFILE_STREAM_PREFIX } from '../schemas/identity.js';

const TICK_MS = 50;
const [specArg, rateArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const duration = Number(secondsArg);
if (!specArg || !(rate > 0) || !(duration > 0))
  throw new Error(
    'usage: projections-load.child.js EVENT_STORE_SPEC_JSON EVENTS_PER_SECOND SECONDS',
  );

const store = await openEventStore(JSON.parse(specArg) as EventStoreSpec);
try {
  const facts: RecordedEvent[] = [];
  for await (const event of store.readAll())
    if (!event.stream.startsWith(PROFILE_STREAM_PREFIX)) facts.push(event);
  if (facts.length === 0) throw new Error('no facts in the log');
  // Ready: the parent starts sampling the lag when this line arrives.
  process.stdout.write('ready\n');
  const perTick = Math.round((rate * TICK_MS) / 1000);
  const ticks = (duration * 1000) / TICK_MS;
  let appended = 0;
  const started = performance.now();
  for (let tick = 0; tick < ticks; tick++) {
    const events: EventData[] = [];
    for (let i = 0; i < perTick; i++) {
      const source = facts[(appended + i) % facts.length] as RecordedEvent;
      const id = randomUUID();
      events.push({ id, type: source.type, data: { ...source.data, id } });
    }
    await store.append(`bench-load-${tick % 64}`, events);
    appended += events.length;
    const wait = started + (tick + 1) * TICK_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ appended, seconds })}\n`);
} finally {
  await store.close();
}

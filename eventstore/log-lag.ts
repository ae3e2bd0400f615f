import { comparePositions, type EventReader, type Position } from './event-store.js';

/** How far a follower of the log (the resolver, the projector) is behind its head. */
export interface LogLag {
  /** Log positions between the head and what the follower has made durable: events on the embedded log. */
  readonly events: number;
  /** Age of the oldest event not yet made durable, by when the log recorded it; 0 when caught up. */
  readonly seconds: number;
}

/** What reports a `LogLag`: the resolver, the projector. */
export interface LagReporter {
  lag(): Promise<LogLag>;
}

/**
 * The lag of a follower that has made everything up to `done` durable
 * (undefined: nothing yet). The age is read from the log itself, so a
 * follower that has stopped reading still shows how long it has been behind.
 */
export async function lagBehind(
  log: Pick<EventReader, 'headPosition' | 'readAll'>,
  done: Position | undefined,
): Promise<LogLag> {
  const head = await log.headPosition();
  const behind = head ? Number(head.commit - (done?.commit ?? 0n)) : 0;
  if (behind <= 0) return { events: 0, seconds: 0 };
  // From `done` inclusive: the first event after it, even when `done` itself was erased since.
  for await (const event of log.readAll({ from: done ?? 'start', maxCount: 2 })) {
    if (done && comparePositions(event.position, done) <= 0) continue;
    return {
      events: behind,
      seconds: Math.max(0, (Date.now() - event.recordedAt.getTime()) / 1000),
    };
  }
  return { events: behind, seconds: 0 };
}

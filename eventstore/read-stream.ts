import {
  type EventReader,
  type ReadStreamOptions,
  type RecordedEvent,
  StreamNotFoundError,
} from './event-store.js';

/** The stream's events, or none when it has never been written (small registries and subjects start empty). */
export async function* readStreamIfExists(
  reader: Pick<EventReader, 'readStream'>,
  stream: string,
  options?: ReadStreamOptions,
): AsyncGenerator<RecordedEvent> {
  try {
    yield* reader.readStream(stream, options);
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
}

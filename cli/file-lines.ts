/** Reading generated files line by line and sending them with several requests in flight (the demo, the benchmarks). */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** The non-empty lines of a text file, one at a time. */
export async function* lines(file: string): AsyncGenerator<string> {
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity }))
    if (line.length > 0) yield line;
}

/** The items in arrays of `size` (the last one shorter). */
export async function* chunks<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length === size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** Works through the items with `inFlight` calls at once (an async generator queues concurrent `next` calls). */
export async function pump<T>(
  items: AsyncIterable<T>,
  inFlight: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const iterator = items[Symbol.asyncIterator]();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let next = await iterator.next(); !next.done; next = await iterator.next())
        await work(next.value);
    }),
  );
}

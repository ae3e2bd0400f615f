/** Helpers shared by the event store tests: event factories, draining, the crash child. */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { EventData } from '../event-store.js';
import type { EventStoreSpec } from '../open-event-store.js';

/** The child process that appends until killed (durability) or contends (multi-process). */
export const appenderChild = fileURLToPath(new URL('./appender.child.ts', import.meta.url));

/** Events with fresh ids and small realistic payloads. */
export function makeEvents(
  count: number,
  type = 'contract.tested',
  extra: Partial<EventData> = {},
): EventData[] {
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    type,
    data: {
      index: i,
      sku: `SKU-${i}`,
      price: 19.99,
      tags: ['a', 'b'],
      nested: { ok: true, none: null },
    },
    ...extra,
  }));
}

/** Drains an async iterable into an array. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Rejects with `message` when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the appender child, kills it with SIGKILL the moment it acknowledges
 * its `acks`-th append, and returns every event id it acknowledged.
 */
export async function appendUntilKilled(
  spec: EventStoreSpec,
  stream: string,
  acks: number,
): Promise<string[]> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', appenderChild, JSON.stringify(spec), stream, '10'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const acked: string[] = [];
  let count = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const [word, , ids] = line.split(' ');
    if (word !== 'ack' || !ids) continue;
    acked.push(...ids.split(','));
    if (++count === acks) {
      child.kill('SIGKILL');
      break;
    }
  }
  await exited;
  if (count < acks) throw new Error(`appender exited after ${count} acks: ${stderr}`);
  expect(child.signalCode).toBe('SIGKILL');
  return acked;
}

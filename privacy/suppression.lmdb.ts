import { open } from 'lmdb';
import type { Identifier } from '../schemas/identifier.js';
import type { SuppressionList } from './suppression.js';

/** The embedded suppression list: keyed hashes in an LMDB database, read on every ingested fact. */
export async function openLmdbSuppressionList(options: {
  readonly path: string;
}): Promise<SuppressionList> {
  const root = open({ path: options.path, maxDbs: 2, compression: false });
  const suppressed = root.openDB<true, string>({ name: 'suppressed' });
  const key = (identifier: Identifier) => `${identifier.type}:${identifier.hash}`;
  return {
    has: (identifier) => suppressed.get(key(identifier)) === true,
    add: async (identifiers) => {
      await root.transaction(() => {
        for (const identifier of identifiers) suppressed.put(key(identifier), true);
      });
      await root.flushed;
    },
    remove: async (identifiers) => {
      await root.transaction(() => {
        for (const identifier of identifiers) suppressed.remove(key(identifier));
      });
      await root.flushed;
    },
    close: () => root.close(),
  };
}

import type { Identifier } from '../schemas/identifier.js';

/**
 * Identifiers whose events are refused at ingest: those of erased people
 * (so they do not come back) and of people who asked not to be tracked. Only
 * keyed hashes are kept, never values.
 */
export interface SuppressionList {
  has(identifier: Identifier): boolean;
  add(identifiers: readonly Identifier[]): Promise<void>;
  remove(identifiers: readonly Identifier[]): Promise<void>;
  close(): Promise<void>;
}

import type { DataKey } from './seal.js';

/**
 * Where data keys live: one per subject (an identifier's stream), wrapped
 * by the master key at rest. Destroying a subject's key is crypto-shredding:
 * whatever was sealed under it, in the log or any copy of it, can no longer
 * be read.
 */
export interface KeyStore {
  /** The subject's data key, created and stored on first use. */
  keyFor(subject: string): Promise<DataKey>;
  /** The key with this id, or undefined when it was destroyed or never existed. */
  find(keyId: string): Promise<DataKey | undefined>;
  /**
   * Destroys the subject's key; true when there was one. Destroying twice is
   * harmless. Neither the subject's name nor the key's bytes stay in the
   * store's files.
   */
  destroy(subject: string): Promise<boolean>;
  /** Destroys several subjects' keys at once, as `destroy` does; returns how many had one. */
  destroyMany(subjects: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

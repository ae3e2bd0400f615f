/**
 * A person as a privacy request sees them: the profiles identity resolved for
 * the identifier the request named (the survivor and every profile it
 * absorbed) and every identifier those profiles hold. The erasure removes all
 * of it; the access export gathers all of it. An identifier's raw events are
 * in its stream, `subjectStream(identifier)` (personal-data.ts), which is also
 * the subject of its data key.
 */
import type { Identifier } from '../schemas/identifier.js';

export interface Person {
  /** The profiles, the survivor first. Empty when no profile holds the identifier yet. */
  readonly profileIds: readonly string[];
  /** Every identifier of those profiles (type and keyed hash); the named one is among them. */
  readonly identifiers: readonly Identifier[];
}

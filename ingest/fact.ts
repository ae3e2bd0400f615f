import { deterministicEventId } from '../eventstore/append-once.js';
import {
  type IdentifierHasher,
  type NormaliseOptions,
  normaliseIdentifier,
} from '../privacy/identifiers.js';
import type { Envelope, Source } from '../schemas/envelope.js';
import type { Identifier } from '../schemas/identifier.js';

/**
 * A fact on its way into the log: the envelope without its sealed block, the
 * personal data still in the clear (it is sealed in the last step before the
 * append), and the stream it belongs to.
 */
export interface PendingFact {
  readonly envelope: Omit<Envelope, 'pii'>;
  /** Personal data to seal under the stream subject's key; undefined when there is none. */
  readonly pii: Record<string, unknown> | undefined;
  /** The identifier whose stream holds this fact (its subject), or undefined for a store's anonymous stream. */
  readonly subject: Identifier | undefined;
  /** A fixed stream for facts about no one (the catalog's); overrides the subject's. */
  readonly stream?: string;
}

/** The stream a fact goes to: one per identifier, so one person's raw events are found by identifier. */
export function streamFor(fact: PendingFact): string {
  if (fact.stream !== undefined) return fact.stream;
  return fact.subject
    ? `${fact.subject.type}-${fact.subject.hash}`
    : `store-${fact.envelope.source.storeId ?? fact.envelope.source.id}`;
}

/**
 * A deterministic event id (a UUID, version 5 layout) from the source and the
 * sender's own id for the message, so a retried message maps to the same
 * event and the store's idempotency keeps it once.
 */
export function eventIdFor(source: Source, senderId: string): string {
  return deterministicEventId(source.kind, source.id, senderId);
}

/**
 * Collects a fact's identifiers: each raw value normalised and hashed, kept
 * once; values that do not normalise (blank, not an email…) are skipped,
 * placeholders the identity rules name are kept but flagged `neverLink`.
 */
export function identifierCollector(hasher: IdentifierHasher, options: NormaliseOptions) {
  const found = new Map<string, Identifier>();
  return {
    /** Adds a raw value of a type; returns its identifier, or undefined when it is none. */
    add(type: string, raw: unknown): Identifier | undefined {
      if (typeof raw !== 'string') return undefined;
      const normalised = normaliseIdentifier(type, raw, options);
      if (!normalised.ok) return undefined;
      const hashed = hasher.hash(type, normalised.value);
      const identifier = options.neverLink?.(type, normalised.value)
        ? { ...hashed, neverLink: true as const }
        : hashed;
      found.set(`${type}:${identifier.hash}`, identifier);
      return identifier;
    },
    get all(): Identifier[] {
      return [...found.values()];
    },
  };
}

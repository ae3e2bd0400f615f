/**
 * Facts for identity tests, written the way a scenario is told:
 * `fact('anonymous_id:tablet', 'user_id:ana')`. Identifier hashes are derived
 * from the names, so the same name is the same identifier.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Identifier } from '../../schemas/identifier.js';
import type { EraseCommand, IdentityFact, UnlinkCommand } from '../fact.js';

let position = 0;

/** An identifier from `type:name`; `!` at the end marks a never-link placeholder. */
export function id(spec: string): Identifier {
  const neverLink = spec.endsWith('!');
  const text = neverLink ? spec.slice(0, -1) : spec;
  const colon = text.indexOf(':');
  const type = text.slice(0, colon);
  return {
    type,
    hash: createHash('sha256').update(text).digest('base64url'),
    ...(neverLink ? { neverLink: true as const } : {}),
  };
}

export interface FactOptions {
  readonly at?: number;
  readonly channel?: 'online' | 'offline';
  readonly sourceKind?: string;
  readonly consent?: Record<string, boolean>;
  readonly traits?: Record<string, unknown>;
  readonly storeId?: string;
}

/** A fact carrying the given identifiers. */
export function fact(...specs: (string | FactOptions)[]): IdentityFact {
  const options = (specs.find((spec) => typeof spec !== 'string') ?? {}) as FactOptions;
  position++;
  return {
    kind: 'fact',
    eventId: randomUUID(),
    position: `${position}/${position}`,
    at: options.at ?? Date.UTC(2026, 0, 1) + position * 60_000,
    channel: options.channel ?? (options.storeId ? 'offline' : 'online'),
    sourceKind: options.sourceKind ?? (options.storeId ? 'pos' : 'web'),
    identifiers: specs.filter((spec): spec is string => typeof spec === 'string').map(id),
    consent: options.consent,
    traits: options.traits,
    storeId: options.storeId,
  };
}

/** An operator's request to keep two identifiers apart. */
export function unlink(
  a: string,
  b: string,
  reason = 'customer service: two people',
): UnlinkCommand {
  position++;
  return {
    kind: 'unlink',
    eventId: randomUUID(),
    position: `${position}/${position}`,
    identifiers: [id(a), id(b)],
    reason,
    requestedBy: 'test-operator',
  };
}

/** A privacy officer's erasure of the person holding `spec`. */
export function erase(spec: string, requestId = 'prq_test'): EraseCommand {
  position++;
  return {
    kind: 'erase',
    eventId: randomUUID(),
    position: `${position}/${position}`,
    identifier: id(spec),
    requestId,
    requestedBy: 'privacy',
  };
}

/**
 * A person's raw events for an access export: every event of every one of
 * their identifiers' streams, read page by page, with the personal fields
 * unsealed and put back where the sender had them. On the way, the plain
 * values of their identifiers are recovered: the log holds identifiers only
 * as keyed hashes, so a personal field whose value hashes to one of the
 * person's identifiers is that identifier's plain value.
 */
import type { EventReader } from '../eventstore/event-store.js';
import { StreamDeletedError } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import { type Envelope, EVENT_NAMES } from '../schemas/envelope.js';
import type { Identifier } from '../schemas/identifier.js';
import {
  type IdentifierHasher,
  type NormaliseOptions,
  normaliseIdentifier,
} from './identifiers.js';
import type { KeyStore } from './keystore.js';
import { subjectStream } from './personal-data.js';
import { unseal } from './seal.js';

export interface EventReadDeps {
  readonly eventStore: Pick<EventReader, 'readStream'>;
  readonly keyStore: Pick<KeyStore, 'find'>;
  readonly hasher: IdentifierHasher;
  readonly normalise: NormaliseOptions;
}

/** One event as the export writes it. */
export interface ExportedEvent {
  readonly eventId: string;
  /** The type of the identifier whose stream holds the event (its hash is not repeated). */
  readonly filedUnder: string;
  readonly type: string;
  readonly occurredAt: string | null;
  readonly receivedAt: string | null;
  readonly source: Record<string, unknown> | null;
  /** What was sent, personal fields included. */
  readonly data: Record<string, unknown>;
  /** `restored`: personal fields unsealed and in place; `none`: it had none; `unreadable`: their key is gone. */
  readonly personalData: 'restored' | 'none' | 'unreadable';
  /** Paths of fields left out because they are another person's identifier. */
  readonly withheld?: readonly string[];
}

export const identifierKey = (identifier: Pick<Identifier, 'type' | 'hash'>) =>
  `${identifier.type}:${identifier.hash}`;

/**
 * The plain values of a person's identifiers, learnt from the personal fields
 * `offer`ed to it: each string is normalised as every identifier type still
 * missing and hashed; a hash of the person's is a match.
 */
export class IdentifierRecovery {
  private readonly wanted = new Map<string, Set<string>>();
  private readonly found = new Map<string, string>();
  /** Strings already tried and matching nothing: a device id recurs in every event. */
  private readonly tried = new Set<string>();

  constructor(
    identifiers: readonly Identifier[],
    private readonly hasher: IdentifierHasher,
    private readonly normalise: NormaliseOptions,
  ) {
    for (const { type, hash } of identifiers) {
      const hashes = this.wanted.get(type) ?? new Set<string>();
      hashes.add(hash);
      this.wanted.set(type, hashes);
    }
  }

  offer(value: unknown): void {
    if (typeof value !== 'string' || this.wanted.size === 0 || this.tried.has(value)) return;
    let matched = false;
    for (const [type, hashes] of this.wanted) {
      const normalised = normaliseIdentifier(type, value, this.normalise);
      if (!normalised.ok) continue;
      const { hash } = this.hasher.hash(type, normalised.value);
      if (!hashes.delete(hash)) continue;
      this.found.set(identifierKey({ type, hash }), normalised.value);
      if (hashes.size === 0) this.wanted.delete(type);
      matched = true;
    }
    if (matched) return;
    if (this.tried.size >= 10_000) this.tried.clear();
    this.tried.add(value);
  }

  /** The identifier's plain value (normalised, as matching knows it), when one was seen. */
  valueOf(identifier: Pick<Identifier, 'type' | 'hash'>): string | undefined {
    return this.found.get(identifierKey(identifier));
  }

  get recovered(): number {
    return this.found.size;
  }
}

/**
 * Every event of the person's identifiers' streams, stream after stream, in
 * stream order. `recovery`, when given, is offered every personal value.
 */
export async function* personEvents(
  deps: EventReadDeps,
  identifiers: readonly Identifier[],
  recovery?: IdentifierRecovery,
): AsyncGenerator<ExportedEvent> {
  const own = new Set(identifiers.map(identifierKey));
  const ordered = [...identifiers].sort((a, b) =>
    identifierKey(a) < identifierKey(b) ? -1 : identifierKey(a) > identifierKey(b) ? 1 : 0,
  );
  for (const identifier of ordered) {
    for await (const event of readIfLive(deps.eventStore, subjectStream(identifier))) {
      const envelope = event.data as unknown as Partial<Envelope>;
      const data = (envelope.data ?? {}) as Record<string, unknown>;
      const base = {
        eventId: event.id,
        filedUnder: identifier.type,
        type: event.type,
        occurredAt: envelope.occurredAt ?? null,
        receivedAt: envelope.receivedAt ?? null,
        source: (envelope.source as Record<string, unknown> | undefined) ?? null,
      };
      if (!envelope.pii) {
        yield { ...base, data, personalData: 'none' };
        continue;
      }
      const key = await deps.keyStore.find(envelope.pii.keyId);
      if (!key) {
        yield { ...base, data, personalData: 'unreadable' };
        continue;
      }
      const personal = unseal(envelope.pii, key, event.id) as Record<string, unknown>;
      const withheld = othersIdentifiers(deps, personal, envelope.identifiers ?? [], own);
      for (const path of withheld) delete personal[path];
      if (recovery) for (const value of Object.values(personal)) recovery.offer(value);
      yield {
        ...base,
        data: withPersonalFields(data, personal),
        personalData: 'restored',
        ...(withheld.length > 0 ? { withheld } : {}),
      };
    }
  }
}

/** A stream's events; none when it never existed or was deleted (an erasure ran). */
export async function* readIfLive(reader: Pick<EventReader, 'readStream'>, stream: string) {
  try {
    yield* readStreamIfExists(reader, stream);
  } catch (error) {
    if (!(error instanceof StreamDeletedError)) throw error;
  }
}

/**
 * Personal fields whose value is an identifier of the event that the person
 * does not hold: someone else signed in on their device, say. Those are that
 * other person's data. Placeholders (`neverLink`) belong to no one.
 */
function othersIdentifiers(
  deps: Pick<EventReadDeps, 'hasher' | 'normalise'>,
  personal: Record<string, unknown>,
  identifiers: readonly Identifier[],
  own: ReadonlySet<string>,
): string[] {
  const foreign = identifiers.filter((id) => !id.neverLink && !own.has(identifierKey(id)));
  if (foreign.length === 0) return [];
  return Object.entries(personal)
    .filter(
      ([, value]) =>
        typeof value === 'string' &&
        foreign.some((id) => {
          const normalised = normaliseIdentifier(id.type, value, deps.normalise);
          return normalised.ok && deps.hasher.hash(id.type, normalised.value).hash === id.hash;
        }),
    )
    .map(([path]) => path);
}

/**
 * `data` with each personal field put back at its path (`traits.email`,
 * `tenders.0.cardToken`, `userId`), as ingest took it out. Keys are set as
 * own properties, so a path through `__proto__` cannot reach a prototype.
 */
export function withPersonalFields(
  data: Record<string, unknown>,
  personal: Record<string, unknown>,
): Record<string, unknown> {
  // Copied along each path only: the event as read stays as it was.
  const out = { ...data };
  for (const [path, value] of Object.entries(personal)) {
    const keys = path.split('.');
    const last = keys.pop() as string;
    let node: object = out;
    for (const key of keys) {
      const next = own(node, key);
      node = define(
        node,
        key,
        Array.isArray(next)
          ? [...next]
          : next !== null && typeof next === 'object'
            ? { ...next }
            : {},
      ) as object;
    }
    define(node, last, value);
  }
  return out;
}

function own(node: object, key: string): unknown {
  return Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined;
}

function define(node: object, key: string, value: unknown): unknown {
  // Assigning `__proto__` would set the prototype; defining it makes a plain field.
  if (key === '__proto__')
    Object.defineProperty(node, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  else (node as Record<string, unknown>)[key] = value;
  return value;
}

export const EVENT_CSV_COLUMNS = [
  'event_id',
  'filed_under',
  'type',
  'occurred_at',
  'received_at',
  'channel',
  'source_kind',
  'source_id',
  'store_id',
  'event_name',
  'page_name',
  'order_id',
  'revenue',
  'currency',
  'personal_data',
  'data',
] as const;

/** An event as one flat CSV row: the columns the warehouse's `events` table has, and the data as JSON. */
export function eventCsvRow(event: ExportedEvent): Record<string, unknown> {
  const { data, source } = event;
  const properties = (data.properties ?? {}) as Record<string, unknown>;
  const receipt = event.type === 'pos.receipt';
  const eventName =
    event.type === 'track' ? String(data.event ?? '') : (EVENT_NAMES[event.type] ?? event.type);
  const isOrder = eventName === 'Order Completed';
  const revenue = receipt
    ? (Number(data.totalCents ?? 0) / 100).toFixed(2)
    : isOrder
      ? (properties.revenue ?? properties.total ?? null)
      : null;
  return {
    event_id: event.eventId,
    filed_under: event.filedUnder,
    type: event.type,
    occurred_at: event.occurredAt,
    received_at: event.receivedAt,
    channel: data.channel ?? null,
    source_kind: source?.kind ?? null,
    source_id: source?.id ?? null,
    store_id: source?.storeId ?? properties.store_id ?? null,
    event_name: eventName,
    page_name: event.type === 'page' || event.type === 'screen' ? (data.name ?? null) : null,
    order_id: isOrder ? ((receipt ? data.receiptId : properties.order_id) ?? null) : null,
    revenue,
    currency: isOrder ? ((receipt ? data.currency : properties.currency) ?? null) : null,
    personal_data: event.personalData,
    data,
  };
}

/**
 * What the resolver reads from the log: facts (events in the envelope ingest
 * writes, carrying identifiers) and operators' commands. Everything else —
 * its own profile events, the platform's system events, even one that
 * happens to have an `identifiers` field — it passes over.
 */
import { formatPosition, type RecordedEvent } from '../eventstore/event-store.js';
import { CONSENT_STATED } from '../schemas/consent.js';
import { SOURCE_KINDS } from '../schemas/envelope.js';
import type { Identifier } from '../schemas/identifier.js';
import {
  ERASURE_STREAM_PREFIX,
  ErasureRequested,
  ForgetRequested,
  IDENTITY_COMMANDS_STREAM,
  IdentityCommandTypes,
  PROFILE_STREAM_PREFIX,
  UnlinkRequested,
} from '../schemas/identity.js';

export type Channel = 'online' | 'offline';

/** A fact as identity needs it: who it names, when, where, and what it says about consent and traits. */
export interface IdentityFact {
  readonly kind: 'fact';
  readonly eventId: string;
  readonly position: string;
  /** When it happened (ms since the epoch). */
  readonly at: number;
  /** Where the person was; undefined for a statement that is no visit (a consent platform's). */
  readonly channel: Channel | undefined;
  readonly sourceKind: string;
  readonly identifiers: readonly Identifier[];
  /** Purpose → granted, when the fact carries a consent statement. */
  readonly consent: Readonly<Record<string, boolean>> | undefined;
  /** Non-personal traits an identify call set. */
  readonly traits: Readonly<Record<string, unknown>> | undefined;
  /** The store of an offline fact. */
  readonly storeId: string | undefined;
}

export interface UnlinkCommand extends UnlinkRequested {
  readonly kind: 'unlink';
  readonly eventId: string;
  readonly position: string;
}

export interface ForgetCommand extends ForgetRequested {
  readonly kind: 'forget';
  readonly eventId: string;
  readonly position: string;
}

export interface EraseCommand extends ErasureRequested {
  readonly kind: 'erase';
  readonly eventId: string;
  readonly position: string;
}

export type IdentityInput = IdentityFact | UnlinkCommand | ForgetCommand | EraseCommand;

type Json = Record<string, unknown>;

/** Whether `envelope` has the shape of ingest's envelope (`schemas/envelope.ts`), checked cheaply. */
function isEnvelope(envelope: Json, source: Json | undefined): source is Json {
  return (
    envelope.v === 1 &&
    typeof envelope.occurredAt === 'string' &&
    typeof source === 'object' &&
    source !== null &&
    (SOURCE_KINDS as readonly unknown[]).includes(source.kind)
  );
}

/** The event as resolver input, or undefined when identity has nothing to do with it. */
export function identityInput(event: RecordedEvent): IdentityInput | undefined {
  if (event.stream.startsWith(PROFILE_STREAM_PREFIX)) return undefined;
  if (event.stream === IDENTITY_COMMANDS_STREAM || event.stream.startsWith(ERASURE_STREAM_PREFIX))
    return command(event);
  const envelope = event.data as Json;
  const identifiers = envelope.identifiers;
  if (!Array.isArray(identifiers) || identifiers.length === 0) return undefined;
  const source = envelope.source as Json | undefined;
  if (!isEnvelope(envelope, source)) return undefined;
  const data = (envelope.data ?? {}) as Json;
  const occurredAt = Date.parse(envelope.occurredAt as string);
  return {
    kind: 'fact',
    eventId: event.id,
    position: formatPosition(event.position),
    at: Number.isNaN(occurredAt) ? event.recordedAt.getTime() : occurredAt,
    channel: channelOf(envelope.type, data),
    sourceKind: typeof source.kind === 'string' ? source.kind : 'import',
    identifiers: identifiers as Identifier[],
    consent: consentOf(data),
    traits: envelope.type === 'identify' ? objectOrUndefined(data.traits) : undefined,
    storeId: typeof source.storeId === 'string' ? source.storeId : undefined,
  };
}

function channelOf(type: unknown, data: Json): Channel | undefined {
  if (type === CONSENT_STATED) return undefined;
  return data.channel === 'offline' ? 'offline' : 'online';
}

/**
 * Segment's consent convention on a call, or the purposes a till recorded at
 * sign-up or a consent platform sent (`data.consent.purposes`). Purposes
 * beyond the configured ones are kept: SDKs send what their banner asked.
 */
function consentOf(data: Json): Record<string, boolean> | undefined {
  const context = data.context as Json | undefined;
  const preferences = (context?.consent as Json | undefined)?.categoryPreferences;
  const purposes = preferences ?? (data.consent as Json | undefined)?.purposes;
  const object = objectOrUndefined(purposes);
  if (!object) return undefined;
  const booleans: Record<string, boolean> = {};
  let any = false;
  for (const [purpose, granted] of Object.entries(object)) {
    if (typeof granted !== 'boolean') continue;
    booleans[purpose] = granted;
    any = true;
  }
  return any ? booleans : undefined;
}

function objectOrUndefined(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Json)
    : undefined;
}

function command(event: RecordedEvent): IdentityInput | undefined {
  const at = { eventId: event.id, position: formatPosition(event.position) };
  if (event.type === IdentityCommandTypes.unlink) {
    const parsed = UnlinkRequested.safeParse(event.data);
    return parsed.success ? { kind: 'unlink', ...at, ...parsed.data } : undefined;
  }
  if (event.type === IdentityCommandTypes.forget) {
    const parsed = ForgetRequested.safeParse(event.data);
    return parsed.success ? { kind: 'forget', ...at, ...parsed.data } : undefined;
  }
  if (event.type === IdentityCommandTypes.erase) {
    const parsed = ErasureRequested.safeParse(event.data);
    return parsed.success ? { kind: 'erase', ...at, ...parsed.data } : undefined;
  }
  return undefined;
}

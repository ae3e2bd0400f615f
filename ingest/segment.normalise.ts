/**
 * Segment calls → pending facts in the one envelope. Identifiers leave the
 * call only as keyed hashes; raw ids, traits and context that identify a
 * person go to the personal block, sealed before the append.
 */
import { randomUUID } from 'node:crypto';
import {
  type IdentifierHasher,
  type NormaliseOptions,
  normaliseIdentifier,
} from '../privacy/identifiers.js';
import type { Source } from '../schemas/envelope.js';
import type { Identifier } from '../schemas/identifier.js';
import type { SegmentCall } from '../schemas/segment.js';
import { eventIdFor, type PendingFact } from './fact.js';
import { splitPersonalData } from './personal-data.js';

export interface CallContext {
  /** When Tandem received the request (ms). */
  readonly receivedAt: number;
  /** The batch's `sentAt`, used when a call has none of its own. */
  readonly batchSentAt: string | undefined;
  readonly source: Source;
  readonly hasher: IdentifierHasher;
  readonly normalise: NormaliseOptions;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One call as a pending fact. Its subject is the device (anonymousId), else the account (userId). */
export function normaliseCall(call: SegmentCall, context: CallContext): PendingFact {
  const receivedAt = new Date(context.receivedAt).toISOString();
  const identifiers = new Map<string, Identifier>();
  const add = (type: string, raw: unknown) => {
    if (typeof raw !== 'string') return undefined;
    const normalised = normaliseIdentifier(type, raw, context.normalise);
    if (!normalised.ok) return undefined;
    const identifier = context.hasher.hash(type, normalised.value);
    identifiers.set(`${type}:${identifier.hash}`, identifier);
    return identifier;
  };
  const device = add('anonymous_id', call.anonymousId);
  const account = add('user_id', call.userId);
  if (call.type === 'alias')
    add(UUID.test(call.previousId) ? 'anonymous_id' : 'user_id', call.previousId);

  const { ip, location, traits: contextTraits, ...context_ } = call.context ?? {};
  const callTraits = call.type === 'identify' || call.type === 'group' ? call.traits : undefined;
  const traits = splitPersonalData(
    callTraits as Record<string, unknown> | undefined,
    'traits',
    'traits',
  );
  const traitsInContext = splitPersonalData(contextTraits, 'context.traits', 'traits');
  const properties = splitPersonalData(
    'properties' in call ? (call.properties as Record<string, unknown> | undefined) : undefined,
    'properties',
    'properties',
  );
  const rest = splitPersonalData(context_, 'context', 'context');
  const identifyingTraits: Record<string, unknown> = { ...callTraits, ...contextTraits };
  add('email', identifyingTraits.email);
  add('phone', identifyingTraits.phone);

  const personal: Record<string, unknown> = {
    ...traits.personal,
    ...traitsInContext.personal,
    ...properties.personal,
    ...rest.personal,
    ...(call.anonymousId === undefined ? {} : { anonymousId: call.anonymousId }),
    ...(call.userId === undefined ? {} : { userId: call.userId }),
    ...(call.type === 'alias' ? { previousId: call.previousId } : {}),
    ...(ip === undefined ? {} : { 'context.ip': ip }),
    ...(location === undefined ? {} : { 'context.location': location }),
  };
  const occurredAt = correctedTime(call, context);
  return {
    envelope: {
      id: call.messageId ? eventIdFor(context.source, call.messageId) : randomUUID(),
      type: call.type,
      v: 1,
      source: context.source,
      occurredAt,
      receivedAt,
      identifiers: [...identifiers.values()],
      data: compact({
        channel: 'online',
        messageId: call.messageId,
        event: call.type === 'track' ? call.event : undefined,
        name: call.type === 'page' || call.type === 'screen' ? call.name : undefined,
        category: call.type === 'page' ? call.category : undefined,
        groupId: call.type === 'group' ? call.groupId : undefined,
        properties: properties.clean,
        traits: traits.clean,
        context: {
          ...rest.clean,
          ...(traitsInContext.clean ? { traits: traitsInContext.clean } : {}),
        },
        clientTimestamp: call.timestamp,
      }),
    } as PendingFact['envelope'],
    pii: Object.keys(personal).length > 0 ? personal : undefined,
    subject: device ?? account,
  };
}

/**
 * Segment's clock-skew correction: a device whose clock is off stamps both
 * `timestamp` and `sentAt` with it, so `timestamp + (receivedAt − sentAt)`
 * is when it happened by the server's clock.
 */
export function correctedTime(
  call: SegmentCall,
  context: Pick<CallContext, 'receivedAt' | 'batchSentAt'>,
): string {
  const timestamp = call.timestamp ?? call.originalTimestamp;
  if (timestamp === undefined) return new Date(context.receivedAt).toISOString();
  const sentAt = call.sentAt ?? context.batchSentAt;
  const at =
    Date.parse(timestamp) + (sentAt === undefined ? 0 : context.receivedAt - Date.parse(sentAt));
  return new Date(at).toISOString();
}

/** Drops undefined fields, so the stored JSON has no holes (and LMDB and KurrentDB store the same thing). */
function compact(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined));
}

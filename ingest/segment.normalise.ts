/**
 * Segment calls → pending facts in the one envelope. Identifiers leave the
 * call only as keyed hashes; raw ids, traits and context that identify a
 * person go to the personal block, sealed before the append.
 */
import { randomUUID } from 'node:crypto';
import type { IdentifierHasher, NormaliseOptions } from '../privacy/identifiers.js';
import type { Source } from '../schemas/envelope.js';
import type { SegmentCall } from '../schemas/segment.js';
import { eventIdFor, identifierCollector, type PendingFact } from './fact.js';
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

/**
 * The calls of one request as pending facts. What the calls share (the
 * receipt time, the batch's clock skew) is worked out once.
 */
export function callNormaliser(context: CallContext): (call: SegmentCall) => PendingFact {
  const receivedAt = new Date(context.receivedAt).toISOString();
  const batchSkew =
    context.batchSentAt === undefined ? 0 : context.receivedAt - Date.parse(context.batchSentAt);
  return (call) => normaliseCall(call, context, receivedAt, batchSkew);
}

/** One call as a pending fact. Its subject is the device (anonymousId), else the account (userId). */
function normaliseCall(
  call: SegmentCall,
  context: CallContext,
  receivedAt: string,
  batchSkew: number,
): PendingFact {
  const identifiers = identifierCollector(context.hasher, context.normalise);
  const add = identifiers.add;
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
  if (callTraits !== undefined || contextTraits !== undefined) {
    const identifyingTraits: Record<string, unknown> = { ...callTraits, ...contextTraits };
    add('email', identifyingTraits.email);
    add('phone', identifyingTraits.phone);
    // A loyalty card linked to the account in the app: the bridge from online to the till.
    add('member_id', identifyingTraits.memberId ?? identifyingTraits.member_id);
  }

  const personal: Record<string, unknown> = Object.assign(
    {},
    traits.personal,
    traitsInContext.personal,
    properties.personal,
    rest.personal,
  );
  if (call.anonymousId !== undefined) personal.anonymousId = call.anonymousId;
  if (call.userId !== undefined) personal.userId = call.userId;
  if (call.type === 'alias') personal.previousId = call.previousId;
  if (ip !== undefined) personal['context.ip'] = ip;
  if (location !== undefined) personal['context.location'] = location;

  // Built field by field: no undefined holes, so LMDB and KurrentDB store the same JSON.
  const data: Record<string, unknown> = { channel: 'online' };
  if (call.messageId !== undefined) data.messageId = call.messageId;
  if (call.type === 'track') data.event = call.event;
  if ((call.type === 'page' || call.type === 'screen') && call.name !== undefined)
    data.name = call.name;
  if (call.type === 'page' && call.category !== undefined) data.category = call.category;
  if (call.type === 'group') data.groupId = call.groupId;
  if (properties.clean !== undefined) data.properties = properties.clean;
  if (traits.clean !== undefined) data.traits = traits.clean;
  data.context = traitsInContext.clean
    ? { ...rest.clean, traits: traitsInContext.clean }
    : (rest.clean ?? {});
  if (call.timestamp !== undefined) data.clientTimestamp = call.timestamp;

  return {
    envelope: {
      id: call.messageId ? eventIdFor(context.source, call.messageId) : randomUUID(),
      type: call.type,
      v: 1,
      source: context.source,
      occurredAt: correctedTime(call, context.receivedAt, batchSkew),
      receivedAt,
      identifiers: identifiers.all,
      data,
    } as PendingFact['envelope'],
    pii: Object.keys(personal).length > 0 ? personal : undefined,
    subject: device ?? account,
  };
}

/**
 * Segment's clock-skew correction: a device whose clock is off stamps both
 * `timestamp` and `sentAt` with it, so `timestamp + (receivedAt − sentAt)`
 * is when it happened by the server's clock. `batchSkew` is that difference
 * for the batch's `sentAt`, used when the call has no `sentAt` of its own.
 */
function correctedTime(call: SegmentCall, receivedAt: number, batchSkew: number): string {
  const timestamp = call.timestamp ?? call.originalTimestamp;
  if (timestamp === undefined) return new Date(receivedAt).toISOString();
  const skew = call.sentAt === undefined ? batchSkew : receivedAt - Date.parse(call.sentAt);
  return new Date(Date.parse(timestamp) + skew).toISOString();
}

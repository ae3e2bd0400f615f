/**
 * The Segment HTTP Tracking API, as SDKs send it (segment.com/docs/connections/
 * sources/catalog/libraries/server/http-api). Calls keep fields we do not
 * model (SDKs add their own), but every modelled field is checked, and PII
 * fields are marked for sealing.
 */
import { z } from 'zod';
import type { JsonValue } from '../eventstore/event-store.js';
import { pii } from './pii.js';

const Id = z.string().min(1).max(256);
/**
 * Any JSON value. Calls reach these schemas through JSON.parse, which yields
 * nothing else, so nothing is checked at run time: zod's recursive
 * `z.json()` walked every property of every call again, a tenth of ingest's
 * time. Named, so the OpenAPI document refers to it by name.
 */
const Json = z.custom<JsonValue>();
z.globalRegistry.add(Json, { id: 'JsonValue', description: 'any JSON value' });
/** Any JSON object: one check, not one per key (zod's records cost a quarter of validating a call). */
const JsonRecord = z.custom<Record<string, JsonValue>>(
  (value) => value !== null && typeof value === 'object' && !Array.isArray(value),
  { message: 'expected an object' },
);
z.globalRegistry.add(JsonRecord, {
  id: 'JsonObject',
  type: 'object',
  additionalProperties: { $ref: '#/components/schemas/JsonValue' },
  description: 'any JSON object',
});
/** ISO-8601 with an offset or Z, as SDKs write it (`new Date().toISOString()`). */
const Timestamp = z.iso.datetime({ offset: true });

/** Segment's consent convention: purpose → allowed. */
export const SegmentConsent = z.looseObject({
  categoryPreferences: z.record(z.string(), z.boolean()),
});

export const SegmentContext = z.looseObject({
  ip: pii(z.string().max(64), 'ip').optional(),
  userAgent: z.string().max(1024).optional(),
  locale: z.string().max(35).optional(),
  timezone: z.string().max(64).optional(),
  page: z
    .looseObject({
      path: z.string().max(2048).optional(),
      referrer: z.string().max(2048).optional(),
      search: z.string().max(2048).optional(),
      title: z.string().max(1024).optional(),
      url: z.string().max(4096).optional(),
    })
    .optional(),
  library: z.looseObject({ name: z.string(), version: z.string() }).optional(),
  device: z.looseObject({ id: z.string().optional(), type: z.string().optional() }).optional(),
  app: z.looseObject({ name: z.string().optional(), version: z.string().optional() }).optional(),
  location: pii(JsonRecord, 'geo').optional(),
  traits: JsonRecord.optional(),
  consent: SegmentConsent.optional(),
});

/** Traits Segment reserves; the personal ones are sealed. */
export const SegmentTraits = z.looseObject({
  email: pii(z.string().max(320), 'email').optional(),
  phone: pii(z.string().max(64), 'phone').optional(),
  name: pii(z.string().max(256), 'name').optional(),
  firstName: pii(z.string().max(256), 'name').optional(),
  lastName: pii(z.string().max(256), 'name').optional(),
  address: pii(JsonRecord, 'address').optional(),
  birthday: pii(z.string().max(64), 'birthday').optional(),
});

const common = {
  messageId: Id.optional(),
  anonymousId: Id.optional(),
  userId: Id.optional(),
  timestamp: Timestamp.optional(),
  originalTimestamp: Timestamp.optional(),
  sentAt: Timestamp.optional(),
  context: SegmentContext.optional(),
  integrations: JsonRecord.optional(),
};

const identified = (call: { anonymousId?: string | undefined; userId?: string | undefined }) =>
  call.anonymousId !== undefined || call.userId !== undefined;
const needsIdentity = { message: 'either userId or anonymousId is required', path: ['userId'] };

export const TrackCall = z
  .looseObject({
    ...common,
    type: z.literal('track'),
    event: z.string().min(1).max(256),
    properties: JsonRecord.optional(),
  })
  .refine(identified, needsIdentity);
export const PageCall = z
  .looseObject({
    ...common,
    type: z.literal('page'),
    name: z.string().max(256).optional(),
    category: z.string().max(256).optional(),
    properties: JsonRecord.optional(),
  })
  .refine(identified, needsIdentity);
export const ScreenCall = z
  .looseObject({
    ...common,
    type: z.literal('screen'),
    name: z.string().max(256).optional(),
    properties: JsonRecord.optional(),
  })
  .refine(identified, needsIdentity);
export const IdentifyCall = z
  .looseObject({ ...common, type: z.literal('identify'), traits: SegmentTraits.optional() })
  .refine(identified, needsIdentity);
export const GroupCall = z
  .looseObject({ ...common, type: z.literal('group'), groupId: Id, traits: JsonRecord.optional() })
  .refine(identified, needsIdentity);
export const AliasCall = z.looseObject({
  ...common,
  type: z.literal('alias'),
  previousId: Id,
  userId: Id,
});

/** Any one call, told apart by `type`. */
export const SegmentCall = z.discriminatedUnion('type', [
  TrackCall,
  PageCall,
  ScreenCall,
  IdentifyCall,
  GroupCall,
  AliasCall,
]);
export type SegmentCall = z.infer<typeof SegmentCall>;
export type TrackCall = z.infer<typeof TrackCall>;
export type IdentifyCall = z.infer<typeof IdentifyCall>;

/** What `POST /v1/batch` takes. Size limits (32 KB a call, 500 KB a batch) are ingest's to enforce on bytes. */
export const SegmentBatch = z.looseObject({
  batch: z.array(SegmentCall).min(1),
  context: SegmentContext.optional(),
  integrations: JsonRecord.optional(),
  sentAt: Timestamp.optional(),
  writeKey: z.string().optional(),
});
export type SegmentBatch = z.infer<typeof SegmentBatch>;

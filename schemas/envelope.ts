import { z } from 'zod';
import { Identifier } from './identifier.js';

/** Where a fact came from; `cmp` is a consent-management platform (`POST /v1/consents`). */
export const SOURCE_KINDS = ['web', 'app', 'pos', 'import', 'cmp', 'system'] as const;
export const SourceKind = z.enum(SOURCE_KINDS);

const Name = z.string().min(1).max(128);

export const Source = z.strictObject({
  kind: SourceKind,
  /** The source (write key's source, POS system, import job, Tandem part) that sent it. */
  id: Name,
  /** The store a POS or in-store fact happened in. */
  storeId: Name.optional(),
});
export type Source = z.infer<typeof Source>;

const Base64Url = z.string().regex(/^[A-Za-z0-9_-]*$/, 'must be base64url');

/**
 * PII sealed with AES-256-GCM under the data key of one subject. Erasing the
 * subject destroys the key, which makes every copy of this block unreadable.
 */
export const SealedPii = z.strictObject({
  alg: z.literal('A256GCM'),
  /** The data key's id (one key per subject). */
  keyId: Name,
  iv: Base64Url.length(16),
  tag: Base64Url.length(22),
  ciphertext: Base64Url.min(1),
});
export type SealedPii = z.infer<typeof SealedPii>;

/** Dotted lower-case names: `track`, `pos.receipt`, `identity.linked`. */
export const EventType = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/,
    'event type must be dotted snake_case, e.g. "pos.receipt"',
  )
  .max(128);

const Timestamp = z.iso.datetime({ offset: false, precision: 3 });

/**
 * The envelope every fact in the log shares, online or offline. `data` holds
 * no PII: what is personal travels sealed in `pii`, and identifiers travel as
 * keyed hashes.
 */
export const Envelope = z.strictObject({
  id: z.uuid(),
  type: EventType,
  /** Envelope schema version; bumped only with an upcaster for older events. */
  v: z.literal(1),
  source: Source,
  /** When it happened (client time corrected for clock skew, or the till's time). */
  occurredAt: Timestamp,
  /** When Tandem received it. */
  receivedAt: Timestamp,
  identifiers: z.array(Identifier).max(32),
  data: z.record(z.string(), z.json()),
  pii: SealedPii.optional(),
});
export type Envelope = z.infer<typeof Envelope>;

/** The event name a call or receipt of each type stands for (a `track` call names its own). */
export const EVENT_NAMES: Readonly<Record<string, string>> = {
  page: 'Page Viewed',
  screen: 'Screen Viewed',
  identify: 'Identify',
  alias: 'Alias',
  group: 'Group',
  'pos.receipt': 'Order Completed',
};

/** Segment's e-commerce spec name of an order, online or in a store. */
export const ORDER_COMPLETED = 'Order Completed';

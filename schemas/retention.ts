import { z } from 'zod';
import { CONSENT_STATED } from './consent.js';
import { ORDER_COMPLETED } from './envelope.js';
import { PROFILE_STREAM_PREFIX } from './identity.js';

/**
 * What retention ages out, by kind of event:
 * - `clickstream`: web and app calls (page, screen, track, identify, alias,
 *   group) other than orders;
 * - `orders`: online orders (`Order Completed`) and store receipts;
 * - `consent`: statements from consent-management platforms.
 * The catalog and the platform's own records (keys, segments, privacy
 * requests, identity decisions) are not personal events and never age out.
 */
export const RETENTION_KINDS = ['clickstream', 'orders', 'consent'] as const;
export const RetentionKind = z.enum(RETENTION_KINDS);
export type RetentionKind = z.infer<typeof RetentionKind>;

/** Days each kind is kept; a kind not named is kept for ever. */
export type RetentionPolicy = Partial<Record<RetentionKind, number>>;

/** Raw clickstream for 400 days; orders and consent statements until configured otherwise. */
export const DEFAULT_RETENTION: RetentionPolicy = { clickstream: 400 };

/** `clickstream=400,orders=3650` → a policy; `none` keeps everything. */
export const RetentionSetting = z.string().transform((text, context) => {
  const policy: RetentionPolicy = {};
  if (text.trim() === 'none') return policy;
  for (const part of text.split(',')) {
    const [kind, days] = part.split('=').map((piece) => piece.trim());
    const parsedKind = RetentionKind.safeParse(kind);
    const parsedDays = z.coerce.number().int().min(1).max(36_500).safeParse(days);
    if (!parsedKind.success || !parsedDays.success) {
      context.addIssue({
        code: 'custom',
        message: `"${part.trim()}" is not KIND=DAYS with KIND one of ${RETENTION_KINDS.join(', ')} and DAYS 1..36500 (or "none")`,
      });
      return z.NEVER;
    }
    policy[parsedKind.data] = parsedDays.data;
  }
  return policy;
});

/** What retention looks at in a log event: its type, stream and envelope. */
export interface RetentionSubject {
  readonly type: string;
  readonly stream: string;
  readonly data: Readonly<Record<string, unknown>>;
}

const DAY_MS = 86_400_000;
const CLICKSTREAM_TYPES = new Set(['track', 'page', 'screen', 'identify', 'alias', 'group']);

/** The retention kind of a log event, or undefined for what never ages out. */
export function retentionKindOf(event: RetentionSubject): RetentionKind | undefined {
  if (event.stream.startsWith(PROFILE_STREAM_PREFIX)) return undefined;
  if (event.type === 'pos.receipt') return 'orders';
  if (event.type === CONSENT_STATED) return 'consent';
  if (!CLICKSTREAM_TYPES.has(event.type)) return undefined;
  const data = (event.data.data ?? {}) as { event?: unknown };
  return event.type === 'track' && data.event === ORDER_COMPLETED ? 'orders' : 'clickstream';
}

/** When each kind's events age out, as of `now`: events that happened before it are removed. */
export type RetentionCutoffs = Partial<Record<RetentionKind, number>>;

export function retentionCutoffs(policy: RetentionPolicy, now: number): RetentionCutoffs {
  return Object.fromEntries(
    Object.entries(policy).map(([kind, days]) => [kind, now - (days as number) * DAY_MS]),
  );
}

/** Whether the event has aged out under `cutoffs`. */
export function hasAgedOut(event: RetentionSubject, cutoffs: RetentionCutoffs): boolean {
  const kind = retentionKindOf(event);
  const cutoff = kind && cutoffs[kind];
  if (cutoff === undefined || cutoff === 0) return false;
  const occurredAt = Date.parse(String(event.data.occurredAt));
  return Number.isFinite(occurredAt) && occurredAt < cutoff;
}

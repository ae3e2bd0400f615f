import { z } from 'zod';
import { SealedPii } from './envelope.js';

/**
 * Privacy requests, after Segment's regulation types: `access` (export what
 * is held), `erasure` (erase and suppress), `suppress_only` (stop collecting,
 * keep what is held), `unsuppress` (collect again).
 */
export const PrivacyRequestType = z.enum(['access', 'erasure', 'suppress_only', 'unsuppress']);
export type PrivacyRequestType = z.infer<typeof PrivacyRequestType>;

export const PrivacyRequestState = z.enum([
  'received',
  'resolving',
  'running',
  'verifying',
  'completed',
  'failed',
]);
export type PrivacyRequestState = z.infer<typeof PrivacyRequestState>;

export const PrivacyRequestBody = z.strictObject({
  type: PrivacyRequestType,
  /** `TYPE:VALUE` (`email:ana@example.com`, `member_id:M-1`…) or `profile:prf_…`. */
  identifier: z
    .string()
    .min(3)
    .max(512)
    .regex(/^[a-z][a-z0-9_]{0,31}:./s, 'expected TYPE:VALUE, e.g. email:ana@example.com'),
});
export type PrivacyRequestBody = z.infer<typeof PrivacyRequestBody>;

export const PrivacyRequestId = z.string().regex(/^prq_[A-Za-z0-9_-]{8,40}$/);

/** The index of every request, in filing order: `privacy-requests`. */
export const PRIVACY_REQUESTS_STREAM = 'privacy-requests';

/** One request's own stream: its filing and each step it completed. */
export function privacyRequestStream(requestId: string): string {
  return `privacy-request-${requestId}`;
}

export const PrivacyEventTypes = {
  filed: 'privacy.request_filed',
  progressed: 'privacy.request_progressed',
} as const;

/** Counts of what a step found or removed, by place (no personal data). */
export const StepCounts = z.record(z.string(), z.int().min(0));

/**
 * A request as filed. What it names is sealed under the request's own data
 * key: readable while the request runs, noise once the key is destroyed
 * (an erasure destroys it when it completes).
 */
export const PrivacyRequestFiled = z.strictObject({
  requestId: PrivacyRequestId,
  type: PrivacyRequestType,
  /** The identifier's type (`email`, `profile`…), never its value. */
  identifierType: z.string(),
  /** `{ identifier: "TYPE:VALUE" }`, sealed. */
  sealed: SealedPii,
  /** The key that filed it. */
  requestedBy: z.string(),
  at: z.iso.datetime(),
});
export type PrivacyRequestFiled = z.infer<typeof PrivacyRequestFiled>;

/** A step done, and the state the request is in after it. */
export const PrivacyRequestProgressed = z.strictObject({
  requestId: PrivacyRequestId,
  state: PrivacyRequestState,
  step: z.string(),
  at: z.iso.datetime(),
  counts: StepCounts.optional(),
  /** The person the request resolved to (`Person`), sealed under the request's key. */
  sealed: SealedPii.optional(),
  /** Why the request failed (no personal data). */
  error: z.string().optional(),
});
export type PrivacyRequestProgressed = z.infer<typeof PrivacyRequestProgressed>;

/** A request as the API shows it. */
export const PrivacyRequestView = z.object({
  id: z.string(),
  type: PrivacyRequestType,
  identifierType: z.string(),
  state: PrivacyRequestState,
  requestedBy: z.string(),
  /** When the request entered each state it has been in. */
  times: z.partialRecord(PrivacyRequestState, z.string()),
  steps: z.array(z.object({ step: z.string(), at: z.string(), counts: StepCounts.optional() })),
  /** What was found (access) or removed (erasure) where: counts only. */
  report: StepCounts.optional(),
  error: z.string().optional(),
});
export type PrivacyRequestView = z.infer<typeof PrivacyRequestView>;

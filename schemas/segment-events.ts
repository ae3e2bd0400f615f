import { z } from 'zod';
import { SegmentDefinition } from './segment-definition.js';

/** A saved segment's id: public, stable across versions. */
export const SegmentId = z
  .string()
  .regex(/^seg_[0-9a-z]{12}$/, 'must be a segment id such as seg_0a1b2c3d4e5f');

/** Minutes between scheduled refreshes; null refreshes only on request. */
export const RefreshInterval = z
  .int()
  .min(5)
  .max(7 * 24 * 60)
  .nullable();

export const SegmentEventTypes = {
  created: 'segment.created',
  updated: 'segment.updated',
  archived: 'segment.archived',
  refreshed: 'segment.refreshed',
} as const;

const common = { segmentId: SegmentId, by: z.string(), at: z.iso.datetime() };

/** A segment was saved for the first time (version 1). */
export const SegmentCreated = z.strictObject({
  ...common,
  type: z.literal(SegmentEventTypes.created),
  definition: SegmentDefinition,
  refreshIntervalMinutes: RefreshInterval,
});

/** A new version of the definition (or of its refresh interval). */
export const SegmentUpdated = z.strictObject({
  ...common,
  type: z.literal(SegmentEventTypes.updated),
  version: z.int().min(2),
  definition: SegmentDefinition,
  refreshIntervalMinutes: RefreshInterval,
});

/** The segment is retired: no more refreshes or exports; its history stays. */
export const SegmentArchived = z.strictObject({
  ...common,
  type: z.literal(SegmentEventTypes.archived),
});

/** A refresh ran: how many profiles are in, and how many entered and left. */
export const SegmentRefreshed = z.strictObject({
  ...common,
  type: z.literal(SegmentEventTypes.refreshed),
  refresh: z.int().min(1),
  version: z.int().min(1),
  size: z.int().min(0),
  entered: z.int().min(0),
  left: z.int().min(0),
});

export const SegmentEvent = z.discriminatedUnion('type', [
  SegmentCreated,
  SegmentUpdated,
  SegmentArchived,
  SegmentRefreshed,
]);
export type SegmentEvent = z.infer<typeof SegmentEvent>;

/** Every segment's life in one stream: definitions are few and small, and one stream orders them. */
export const SEGMENTS_STREAM = 'tandem-segments';

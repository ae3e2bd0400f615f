/**
 * Saved segments, event-sourced: each save, new version, archive and refresh
 * is an event in one stream, folded here. Every version of a definition is
 * kept, so "which definition was in force on March 3rd" is answered from the
 * log. Writes check the stream's revision (optimistic concurrency): two
 * processes updating one segment at once cannot both make version 3.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  type EventStore,
  type JsonObject,
  WrongExpectedVersionError,
} from '../../eventstore/event-store.js';
import { followStream } from '../../eventstore/stream-follower.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { SegmentDefinition } from '../../schemas/segment-definition.js';
import {
  SEGMENTS_STREAM,
  type SegmentEvent,
  SegmentEvent as SegmentEventSchema,
  SegmentEventTypes as T,
} from '../../schemas/segment-events.js';

export interface SegmentVersion {
  readonly version: number;
  readonly definition: SegmentDefinition;
  readonly refreshIntervalMinutes: number | null;
  readonly at: string;
  readonly by: string;
}

export interface RefreshRecord {
  readonly refresh: number;
  readonly version: number;
  readonly at: string;
  readonly by: string;
  readonly size: number;
  readonly entered: number;
  readonly left: number;
}

export interface Segment {
  readonly segmentId: string;
  readonly version: number;
  readonly definition: SegmentDefinition;
  readonly refreshIntervalMinutes: number | null;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly updatedAt: string;
  readonly archivedAt?: string;
  readonly lastRefresh?: RefreshRecord;
  readonly versions: readonly SegmentVersion[];
}

export interface SegmentInput {
  readonly definition: SegmentDefinition;
  readonly refreshIntervalMinutes: number | null;
}

export interface SegmentStore {
  create(input: SegmentInput, by: string): Promise<Segment>;
  /** A new version; NOT_FOUND for an unknown id, VALIDATION for an archived one. */
  update(segmentId: string, input: SegmentInput, by: string): Promise<Segment>;
  archive(segmentId: string, by: string): Promise<Segment>;
  recordRefresh(segmentId: string, refresh: Omit<RefreshRecord, 'at'>): Promise<RefreshRecord>;
  /** The segment, archived or not; NOT_FOUND otherwise. */
  get(segmentId: string): Segment;
  list(options?: { readonly includeArchived?: boolean }): Segment[];
  /** The definition in force at `at` (for as-of answers), or undefined when the segment did not exist yet. */
  versionAt(segmentId: string, at: Date): SegmentVersion | undefined;
  /** Reads what other processes appended. */
  refresh(): Promise<void>;
}

const ATTEMPTS = 3;

export async function openSegmentStore(eventStore: EventStore): Promise<SegmentStore> {
  const segments = new Map<string, Segment>();
  let revision = -1;
  const follower = followStream(eventStore, SEGMENTS_STREAM, (event) => {
    evolve(segments, SegmentEventSchema.parse(event.data));
    revision = event.revision;
  });

  /** Appends what `decide` makes of the current state, re-deciding if another writer got there first. */
  const write = async (decide: () => SegmentEvent): Promise<SegmentEvent> => {
    for (let attempt = 1; ; attempt++) {
      await follower.refresh();
      const event = decide();
      try {
        await eventStore.append(
          SEGMENTS_STREAM,
          [{ id: randomUUID(), type: event.type, data: event as unknown as JsonObject }],
          { expected: revision < 0 ? 'no_stream' : revision },
        );
        await follower.refresh();
        return event;
      } catch (error) {
        if (!(error instanceof WrongExpectedVersionError) || attempt === ATTEMPTS) throw error;
      }
    }
  };
  const live = (segmentId: string) => {
    const segment = find(segments, segmentId);
    if (segment.archivedAt)
      throw new TandemError(ErrorCodes.VALIDATION, `segment ${segmentId} is archived`, {
        segmentId,
      });
    return segment;
  };
  const now = () => new Date().toISOString();

  await follower.refresh();
  return {
    async create(input, by) {
      const segmentId = `seg_${randomBytes(8).readBigUInt64BE().toString(36).padStart(13, '0').slice(-12)}`;
      await write(() => ({ type: T.created, segmentId, by, at: now(), ...input }));
      return find(segments, segmentId);
    },
    async update(segmentId, input, by) {
      await write(() => ({
        type: T.updated,
        segmentId,
        version: live(segmentId).version + 1,
        by,
        at: now(),
        ...input,
      }));
      return find(segments, segmentId);
    },
    async archive(segmentId, by) {
      const segment = find(segments, segmentId);
      if (!segment.archivedAt)
        await write(() => {
          live(segmentId);
          return { type: T.archived, segmentId, by, at: now() };
        });
      return find(segments, segmentId);
    },
    async recordRefresh(segmentId, refresh) {
      await write(() => ({ type: T.refreshed, segmentId, at: now(), ...refresh }));
      return find(segments, segmentId).lastRefresh as RefreshRecord;
    },
    get: (segmentId) => find(segments, segmentId),
    list: (options = {}) =>
      [...segments.values()].filter((segment) => options.includeArchived || !segment.archivedAt),
    versionAt(segmentId, at) {
      const segment = segments.get(segmentId);
      return segment?.versions.findLast((version) => Date.parse(version.at) <= at.getTime());
    },
    refresh: follower.refresh,
  };
}

function find(segments: ReadonlyMap<string, Segment>, segmentId: string): Segment {
  const segment = segments.get(segmentId);
  if (!segment)
    throw new TandemError(ErrorCodes.NOT_FOUND, `no segment ${segmentId}`, { segmentId });
  return segment;
}

/** The only place a segment's state changes. */
function evolve(segments: Map<string, Segment>, event: SegmentEvent): void {
  const current = segments.get(event.segmentId);
  switch (event.type) {
    case T.created: {
      const version = {
        version: 1,
        definition: event.definition,
        refreshIntervalMinutes: event.refreshIntervalMinutes,
        at: event.at,
        by: event.by,
      };
      segments.set(event.segmentId, {
        segmentId: event.segmentId,
        version: 1,
        definition: event.definition,
        refreshIntervalMinutes: event.refreshIntervalMinutes,
        createdAt: event.at,
        createdBy: event.by,
        updatedAt: event.at,
        versions: [version],
      });
      return;
    }
    case T.updated:
      if (!current) return;
      segments.set(event.segmentId, {
        ...current,
        version: event.version,
        definition: event.definition,
        refreshIntervalMinutes: event.refreshIntervalMinutes,
        updatedAt: event.at,
        versions: [
          ...current.versions,
          {
            version: event.version,
            definition: event.definition,
            refreshIntervalMinutes: event.refreshIntervalMinutes,
            at: event.at,
            by: event.by,
          },
        ],
      });
      return;
    case T.archived:
      if (current) segments.set(event.segmentId, { ...current, archivedAt: event.at });
      return;
    case T.refreshed:
      if (current) {
        const { type: _type, segmentId: _id, ...refresh } = event;
        segments.set(event.segmentId, { ...current, lastRefresh: refresh });
      }
      return;
  }
}

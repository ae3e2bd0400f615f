/**
 * The Segment HTTP Tracking API: /v1/track, page, screen, identify, alias,
 * group and batch. Auth as Segment does it (the write key as the Basic user
 * name, or `writeKey` in the body); 200 {"success":true} once every event is
 * durably in the log; 32 KB a call and 500 KB a batch, refused with 400s that
 * name the limit.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Source } from '../../schemas/envelope.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import {
  AliasCall,
  GroupCall,
  IdentifyCall,
  PageCall,
  ScreenCall,
  SegmentBatch,
  type SegmentCall,
  TrackCall,
} from '../../schemas/segment.js';
import type { Ingestor } from '../ingestor.js';
import type { WriteKeys } from '../write-keys.js';
import { authenticateWriteKey } from './write-key.auth.js';

export const MAX_CALL_BYTES = 32 * 1024;
export const MAX_BATCH_BYTES = 500 * 1024;

export interface TrackingRoutesOptions {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
}

const SINGLE = {
  track: TrackCall,
  page: PageCall,
  screen: ScreenCall,
  identify: IdentifyCall,
  alias: AliasCall,
  group: GroupCall,
};
const APP_LIBRARIES = /ios|android|react-native|flutter|swift|kotlin/i;

export const trackingRoutes: FastifyPluginAsync<TrackingRoutesOptions> = async (
  app,
  { ingestor, writeKeys },
) => {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const sourceOf = (request: FastifyRequest, call: SegmentCall | undefined): Source => {
    const found = authenticateWriteKey(request, writeKeys);
    const library = (call?.context?.library as { name?: string } | undefined)?.name ?? '';
    const isApp = call?.context?.app !== undefined || APP_LIBRARIES.test(library);
    return { kind: isApp ? 'app' : 'web', id: found.sourceId };
  };

  for (const [type, schema] of Object.entries(SINGLE)) {
    const body = z.preprocess((value) => (isObject(value) ? { ...value, type } : value), schema);
    routes.post(
      `/v1/${type}`,
      { schema: { body }, preValidation: limitSingle },
      async (request) => {
        const call = request.body as SegmentCall;
        await ingestor.tracking(
          { batch: [call], sentAt: call.sentAt },
          Date.now(),
          sourceOf(request, call),
        );
        return { success: true };
      },
    );
  }

  routes.post(
    '/v1/batch',
    { schema: { body: SegmentBatch }, preValidation: limitBatch },
    async (request) => {
      const receivedAt = Date.now();
      const { batch, sentAt } = request.body;
      // One source per request: SDKs send one library's calls in a batch.
      await ingestor.tracking({ batch, sentAt }, receivedAt, sourceOf(request, batch[0]));
      return { success: true };
    },
  );
};

async function limitSingle(request: FastifyRequest): Promise<void> {
  if (tooLarge(request.body)) {
    throw new TandemError(
      ErrorCodes.PAYLOAD_TOO_LARGE,
      `the call is larger than the ${MAX_CALL_BYTES / 1024} KB a call may be`,
    );
  }
}

async function limitBatch(request: FastifyRequest): Promise<void> {
  const batch = (request.body as { batch?: unknown } | undefined)?.batch;
  if (!Array.isArray(batch)) return;
  const issues = batch.flatMap((call, i) =>
    tooLarge(call)
      ? [
          {
            path: `batch.${i}`,
            message: `larger than the ${MAX_CALL_BYTES / 1024} KB a call may be`,
          },
        ]
      : [],
  );
  if (issues.length > 0) {
    throw new TandemError(
      ErrorCodes.PAYLOAD_TOO_LARGE,
      `${issues.length} call(s) larger than the ${MAX_CALL_BYTES / 1024} KB a call may be`,
      { issues },
    );
  }
}

/**
 * Whether a call's JSON is larger than a call may be. A cheap upper bound on
 * its size comes first; only a call whose bound passes the limit is
 * serialised and counted (serialising every call cost a tenth of ingest).
 */
function tooLarge(call: unknown): boolean {
  return (
    jsonBytesBound(call, MAX_CALL_BYTES) > MAX_CALL_BYTES &&
    Buffer.byteLength(JSON.stringify(call ?? null)) > MAX_CALL_BYTES
  );
}

/** The longest JSON number (`-1.2345678901234567e-308`). */
const MAX_NUMBER_CHARS = 24;

/**
 * At least as many bytes as `JSON.stringify(value)` takes in UTF-8: a string
 * character takes at most 6 (`\u001f`), and a number at most 24. Stops
 * counting once past `budget`.
 */
function jsonBytesBound(value: unknown, budget: number): number {
  if (typeof value === 'string') return 2 + 6 * value.length;
  if (value === null || typeof value !== 'object') return MAX_NUMBER_CHARS;
  const record = value as Record<string, unknown>;
  let total = 2;
  for (const key in record) {
    total += 4 + 6 * key.length + jsonBytesBound(record[key], budget - total);
    if (total > budget) break;
  }
  return total;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

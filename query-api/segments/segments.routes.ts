/**
 * Segments for marketers: preview a condition (size, channel split, a
 * sample, the time taken), save it (versioned, event-sourced), refresh it
 * (who entered, who left), and export its members who consented to a
 * purpose. Preview and export answer `asOf` a past time too.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from '../../privacy/audit.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import { SegmentCondition, SegmentDefinition } from '../../schemas/segment-definition.js';
import { RefreshInterval, SegmentId } from '../../schemas/segment-events.js';
import { principalOf, requireRole } from '../auth.js';
import { compileSegment } from './segment-compiler.js';
import {
  CONTACT_FIELDS,
  EXPORT_FORMATS,
  type ExportDeps,
  exportMembers,
} from './segment-export.js';
import { MAX_PREVIEW_SAMPLE, previewSegment } from './segment-preview.js';
import { refreshSegment, segmentLookup } from './segment-refresh.js';
import type { Segment, SegmentStore } from './segment-store.js';

export interface SegmentsRoutesOptions extends ExportDeps {
  readonly segments: SegmentStore;
  readonly audit: AuditLog;
}

const AsOf = z.iso
  .datetime({ offset: true, error: 'asOf must be an ISO-8601 time, e.g. 2026-03-01T00:00:00Z' })
  .optional()
  .describe('answer as the segment stood at this past time');

const SegmentBody = SegmentDefinition.extend({
  refreshIntervalMinutes: RefreshInterval.optional().describe(
    'minutes between scheduled refreshes (5 to 10080); null or absent: on request only',
  ),
});

const RefreshSchema = z.object({
  refresh: z.number(),
  version: z.number(),
  at: z.string(),
  by: z.string(),
  size: z.number(),
  entered: z.number(),
  left: z.number(),
});
const SegmentSchema = z.object({
  segmentId: z.string(),
  version: z.number(),
  definition: z.unknown(),
  refreshIntervalMinutes: z.number().nullable(),
  createdAt: z.string(),
  createdBy: z.string(),
  updatedAt: z.string(),
  archivedAt: z.string().optional(),
  lastRefresh: RefreshSchema.optional(),
  versions: z.array(z.object({ version: z.number(), at: z.string(), by: z.string() })),
});
const Params = z.object({ segmentId: SegmentId });

/** A segment as answered: every version's time and author, the current definition in full. */
function present(segment: Segment) {
  return {
    ...segment,
    versions: segment.versions.map(({ version, at, by }) => ({ version, at, by })),
  };
}

function pastTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const at = new Date(text);
  if (at.getTime() > Date.now())
    throw new TandemError(ErrorCodes.VALIDATION, 'asOf: must not be in the future', {
      issues: [{ path: 'asOf', message: 'must not be in the future' }],
    });
  return at;
}

export const segmentsRoutes: FastifyPluginAsync<SegmentsRoutesOptions> = async (app, options) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { segments, warehouse, audit } = options;
  const marketers = { preHandler: requireRole('marketer') };
  const tags = ['segments'];

  api.post(
    '/v1/segments/preview',
    {
      preHandler: requireRole('marketer', 'analyst'),
      schema: {
        tags,
        summary: 'Size, online/offline split and a sample of a condition, without saving it',
        body: z.strictObject({
          condition: SegmentCondition,
          asOf: AsOf,
          sampleSize: z.int().min(0).max(MAX_PREVIEW_SAMPLE).default(20),
        }),
      },
    },
    async (request) => {
      const asOf = pastTime(request.body.asOf);
      await segments.refresh();
      const preview = await previewSegment(warehouse.client, request.body.condition, {
        database: warehouse.database,
        now: new Date(),
        asOf,
        lookup: segmentLookup(segments, asOf),
        sampleSize: request.body.sampleSize,
      });
      return { ...preview, ...(asOf ? { asOf: asOf.toISOString() } : {}) };
    },
  );

  api.post(
    '/v1/segments',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Save a segment (version 1)',
        body: SegmentBody,
        response: { 201: SegmentSchema },
      },
    },
    async (request, reply) => {
      const { refreshIntervalMinutes = null, ...definition } = request.body;
      // Compiling refuses what the schema cannot see: unknown or circular segment references.
      compileSegment(definition.condition, {
        database: warehouse.database,
        now: new Date(),
        lookup: segmentLookup(segments),
      });
      const segment = await segments.create(
        { definition, refreshIntervalMinutes },
        principalOf(request).keyId,
      );
      return reply.status(201).send(present(segment));
    },
  );

  api.get(
    '/v1/segments',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Saved segments, newest version of each',
        querystring: z.object({ includeArchived: z.stringbool().default(false) }),
        response: { 200: z.object({ segments: z.array(SegmentSchema) }) },
      },
    },
    async (request) => {
      await segments.refresh();
      return { segments: segments.list(request.query).map(present) };
    },
  );

  api.get(
    '/v1/segments/:segmentId',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'One saved segment',
        params: Params,
        response: { 200: SegmentSchema },
      },
    },
    async (request) => {
      await segments.refresh();
      return present(segments.get(request.params.segmentId));
    },
  );

  api.put(
    '/v1/segments/:segmentId',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Save a new version of a segment',
        params: Params,
        body: SegmentBody,
        response: { 200: SegmentSchema },
      },
    },
    async (request) => {
      const { refreshIntervalMinutes = null, ...definition } = request.body;
      compileSegment(definition.condition, {
        database: warehouse.database,
        now: new Date(),
        lookup: (id) =>
          id === request.params.segmentId ? definition : segmentLookup(segments)(id),
      });
      return present(
        await segments.update(
          request.params.segmentId,
          { definition, refreshIntervalMinutes },
          principalOf(request).keyId,
        ),
      );
    },
  );

  api.delete(
    '/v1/segments/:segmentId',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Archive a segment; its history stays',
        params: Params,
        response: { 200: SegmentSchema },
      },
    },
    async (request) =>
      present(await segments.archive(request.params.segmentId, principalOf(request).keyId)),
  );

  api.post(
    '/v1/segments/:segmentId/refresh',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Re-evaluate a segment now, recording who entered and who left',
        params: Params,
        response: { 200: RefreshSchema },
      },
    },
    async (request) => {
      const segment = segments.get(request.params.segmentId);
      if (segment.archivedAt)
        throw new TandemError(ErrorCodes.VALIDATION, `segment ${segment.segmentId} is archived`);
      return refreshSegment(options, segment.segmentId, principalOf(request).keyId);
    },
  );

  api.get(
    '/v1/segments/:segmentId/members',
    {
      ...marketers,
      schema: {
        tags,
        summary:
          'Stream the members who consented to a purpose (CSV, NDJSON or Arrow), optionally with their contact field',
        params: Params,
        querystring: z.object({
          purpose: z
            .string()
            .min(1)
            .max(64)
            .describe('only members who consented to this purpose, e.g. marketing_email'),
          format: z.enum(EXPORT_FORMATS).default('csv'),
          contact: z
            .enum(CONTACT_FIELDS)
            .optional()
            .describe('unseal this contact field for the consenting members'),
          asOf: AsOf,
        }),
      },
    },
    async (request, reply) => {
      const { segmentId } = request.params;
      const { purpose, format, contact } = request.query;
      const asOf = pastTime(request.query.asOf);
      await segments.refresh();
      const segment = segments.get(segmentId);
      const version = asOf ? segments.versionAt(segmentId, asOf) : segment.versions.at(-1);
      if (!version)
        throw new TandemError(
          ErrorCodes.VALIDATION,
          `asOf: segment ${segmentId} did not exist yet then`,
          {
            issues: [{ path: 'asOf', message: `segment ${segmentId} did not exist yet then` }],
          },
        );
      const members = compileSegment(version.definition.condition, {
        database: warehouse.database,
        now: new Date(),
        asOf,
        lookup: segmentLookup(segments, asOf),
      });
      // Recorded before the first row leaves: the trail shows every export asked for, finished or not.
      await audit.record({
        keyId: principalOf(request).keyId,
        action: 'segment.export',
        outcome: 'ok',
        details: {
          segmentId,
          version: version.version,
          purpose,
          format,
          contact: contact ?? null,
          asOf: asOf?.toISOString() ?? null,
        },
      });
      const exported = await exportMembers(options, members, { purpose, format, contact });
      return reply
        .type(exported.contentType)
        .header(
          'Content-Disposition',
          `attachment; filename="${segmentId}.${format === 'arrow' ? 'arrows' : format}"`,
        )
        .send(exported.stream);
    },
  );
};

/**
 * The ingest pipeline after validation: normalise → refuse suppressed
 * identifiers → seal personal data → append, one append per stream.
 *
 * Strategy for retries: event ids are derived from the sender's message id
 * (or the store and receipt id, or a catalog entry's key and content), and a
 * request's facts are grouped by stream in their original order, so a
 * retried request repeats the same appends and the event store recognises
 * them. When a retry is composed differently (the
 * store reports an idempotency conflict), the stream's recent events are read
 * and only the missing ones are appended.
 */
import type { Registry } from 'prom-client';
import { appendOnce } from '../eventstore/append-once.js';
import type { EventAppender, EventData, EventReader } from '../eventstore/event-store.js';
import type { IdentifierHasher, NormaliseOptions } from '../privacy/identifiers.js';
import type { KeyStore } from '../privacy/keystore.js';
import { seal } from '../privacy/seal.js';
import type { SuppressionList } from '../privacy/suppression.js';
import type { Product, Store } from '../schemas/catalog.js';
import { type ConsentStatement, DEFAULT_PURPOSES } from '../schemas/consent.js';
import type { Envelope, Source } from '../schemas/envelope.js';
import { ErrorCodes, type FieldIssue, TandemError } from '../schemas/errors.js';
import type { PosReceipt } from '../schemas/pos.js';
import type { SegmentBatch } from '../schemas/segment.js';
import { normaliseProduct, normaliseStore } from './catalog.normalise.js';
import { normaliseConsent } from './consent.normalise.js';
import { type PendingFact, streamFor } from './fact.js';
import { createIngestMetrics, type IngestMetrics } from './metrics.js';
import { normaliseReceipt } from './pos.normalise.js';
import { callNormaliser } from './segment.normalise.js';

export interface IngestDeps {
  readonly eventStore: EventAppender & Pick<EventReader, 'readStream'>;
  readonly keyStore: KeyStore;
  readonly hasher: IdentifierHasher;
  readonly suppression: SuppressionList;
  readonly normalise: NormaliseOptions;
  readonly metrics: Registry;
  /** The purposes consent platforms may state (`TANDEM_CONSENT_PURPOSES`); the four defaults when unset. */
  readonly consentPurposes?: readonly string[];
}

export interface IngestResult {
  /** Facts now durably in the log (including ones a retry had already stored). */
  readonly accepted: number;
  /** Facts dropped because one of their identifiers is suppressed. */
  readonly suppressed: number;
}

export interface Ingestor {
  /** A validated `/v1/batch` body (single calls come as a batch of one). */
  tracking(
    batch: Pick<SegmentBatch, 'batch' | 'sentAt'>,
    receivedAt: number,
    source: Source,
  ): Promise<IngestResult>;
  /** Validated receipts from one POS source. */
  receipts(
    receipts: readonly PosReceipt[],
    receivedAt: number,
    sourceId: string,
  ): Promise<IngestResult>;
  /** Validated catalog entries (products, stores or both) from one source. */
  catalog(entries: CatalogEntries, receivedAt: number, sourceId: string): Promise<IngestResult>;
  /**
   * Validated consent statements from one consent-management platform: one
   * statement (bad fields reported as `identifier`) or an array (as
   * `3.identifier`). All or none: an identifier that does not normalise or a
   * purpose outside the configured ones refuses the whole request.
   */
  consents(
    statements: ConsentStatement | readonly ConsentStatement[],
    receivedAt: number,
    sourceId: string,
  ): Promise<IngestResult>;
}

/** Catalog entries to upsert; none of them is personal data. */
export interface CatalogEntries {
  readonly products?: readonly Product[];
  readonly stores?: readonly Store[];
}

export function createIngestor(deps: IngestDeps): Ingestor {
  const metrics = createIngestMetrics(deps.metrics);
  const { hasher, normalise } = deps;
  const purposes = deps.consentPurposes ?? DEFAULT_PURPOSES;
  return {
    tracking: (body, receivedAt, source) => {
      const facts = body.batch.map(
        callNormaliser({ receivedAt, batchSentAt: body.sentAt, source, hasher, normalise }),
      );
      // Ids that pass the schema but normalise to nothing (" ") identify no one: refuse the request.
      const issues = facts.flatMap((fact, i) =>
        fact.subject
          ? []
          : [
              {
                path: `batch.${i}.userId`,
                message: 'neither userId nor anonymousId identifies anyone (blank?)',
              },
            ],
      );
      if (issues.length > 0) {
        metrics.rejected.inc({ source: source.kind, reason: 'no_identifier' });
        const first = issues[0] as (typeof issues)[number];
        throw new TandemError(
          ErrorCodes.VALIDATION,
          `invalid input: ${first.path}: ${first.message}`,
          { issues },
        );
      }
      return ingest(deps, metrics, source.kind, facts);
    },
    receipts: (receipts, receivedAt, sourceId) =>
      ingest(
        deps,
        metrics,
        'pos',
        receipts.map((receipt) =>
          normaliseReceipt(receipt, { receivedAt, sourceId, hasher, normalise }),
        ),
      ),
    // Catalog entries travel as store-system facts (source kind `pos`) but are counted apart.
    catalog: ({ products = [], stores = [] }, receivedAt, sourceId) =>
      ingest(deps, metrics, 'catalog', [
        ...products.map((product) => normaliseProduct(product, { receivedAt, sourceId })),
        ...stores.map((store) => normaliseStore(store, { receivedAt, sourceId })),
      ]),
    consents: (body, receivedAt, sourceId) => {
      const many = isList(body);
      const statements = many ? body : [body];
      const context = { receivedAt, sourceId, hasher, normalise, purposes };
      const facts = new Map<string, PendingFact>();
      const issues: FieldIssue[] = [];
      for (const [i, statement] of statements.entries()) {
        const result = normaliseConsent(statement, context);
        if (!result.ok)
          issues.push(
            ...result.issues.map((issue) => ({
              ...issue,
              path: many ? `${i}.${issue.path}` : issue.path,
            })),
          );
        // The same statement twice in one request is one statement.
        else if (!facts.has(result.fact.envelope.id))
          facts.set(result.fact.envelope.id, result.fact);
      }
      if (issues.length > 0) {
        metrics.rejected.inc({ source: 'cmp', reason: 'invalid_consent' });
        throw new TandemError(
          ErrorCodes.VALIDATION,
          `invalid input: ${issues
            .slice(0, 5)
            .map((issue) => `${issue.path}: ${issue.message}`)
            .join('; ')}${issues.length > 5 ? `; and ${issues.length - 5} more` : ''}`,
          { issues },
        );
      }
      return ingest(deps, metrics, 'cmp', [...facts.values()]);
    },
  };
}

function isList<T>(body: T | readonly T[]): body is readonly T[] {
  return Array.isArray(body);
}

async function ingest(
  deps: IngestDeps,
  metrics: IngestMetrics,
  sourceKind: string,
  facts: readonly PendingFact[],
): Promise<IngestResult> {
  const kept = facts.filter(
    (fact) => !fact.envelope.identifiers.some((identifier) => deps.suppression.has(identifier)),
  );
  const suppressed = facts.length - kept.length;
  if (suppressed > 0) metrics.suppressed.inc({ source: sourceKind }, suppressed);

  const streams = kept.map(streamFor);
  // All the request's data keys at once: new ones are created in one key-store commit, not one each.
  const needKeys = [...new Set(streams.filter((_, i) => kept[i]?.pii !== undefined))];
  const keys = new Map(
    await Promise.all(
      needKeys.map(async (stream) => [stream, await deps.keyStore.keyFor(stream)] as const),
    ),
  );
  const byStream = new Map<string, EventData[]>();
  for (const [i, fact] of kept.entries()) {
    const stream = streams[i] as string;
    const key = keys.get(stream);
    const envelope: Envelope =
      fact.pii && key
        ? { ...fact.envelope, pii: seal(fact.pii, key, fact.envelope.id) }
        : fact.envelope;
    const events = byStream.get(stream) ?? [];
    events.push({
      id: envelope.id,
      type: envelope.type,
      data: envelope as unknown as EventData['data'],
    });
    byStream.set(stream, events);
  }
  await Promise.all(
    [...byStream].map(([stream, events]) => appendOnce(deps.eventStore, stream, events)),
  );
  metrics.accepted.inc({ source: sourceKind }, kept.length);
  return { accepted: kept.length, suppressed };
}

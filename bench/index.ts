import { runEventStoreBench } from './eventstore.bench.js';
import { runIdentityBench } from './identity.bench.js';
import { runIngestBench } from './ingest.bench.js';
import { runLoadBench } from './load.bench.js';
import { runPrivacyBench } from './privacy.bench.js';
import { runProjectionsBench } from './projections.bench.js';
import { runRecommendationsBench } from './recommendations.bench.js';
import type { BenchOptions } from './report.js';
import { runSegmentsBench } from './segments.bench.js';

/** Every benchmark, by the name `npm run bench -- NAME` takes. Each returns its printed report. */
export const BENCHMARKS: Readonly<
  Record<string, { readonly summary: string; run(options?: BenchOptions): Promise<string> }>
> = {
  eventstore: {
    summary:
      'append (batches of 1, 100, 1000) and readAll rates of the LMDB event store vs bare LMDB',
    run: runEventStoreBench,
  },
  ingest: {
    summary:
      'HTTP /v1/batch load (100 events a request) against tandem serve vs raw event-store appends',
    run: runIngestBench,
  },
  identity: {
    summary:
      'identity resolver catch-up over a fixture log vs a bare readAll; quality vs the truth; heap of 1M profiles',
    run: runIdentityBench,
  },
  projections: {
    summary:
      'warehouse projector catch-up over a fixture log vs raw chDB inserts of the same rows; lag under 20k events/s',
    run: runProjectionsBench,
  },
  segments: {
    summary:
      'segment preview p50/p95 over ten segments (a sequence and a did-not among them) and member export rows/s, on 1M shoppers',
    run: runSegmentsBench,
  },
  recommendations: {
    summary:
      'recall@10 and NDCG@10 of the model vs popularity on held-out purchases of 100k shoppers; p50/p95 of the endpoint',
    run: runRecommendationsBench,
  },
  privacy: {
    summary:
      'access export and erasure of one person with 10k events across channels, through the API, vs reading their events back',
    run: runPrivacyBench,
  },
  load: {
    summary:
      '60 s of mixed traffic (tracking, POS, previews, profiles, recommendations, SQL) on one tandem demo process: req/s, p50/p99 and errors per route, RSS over time',
    run: runLoadBench,
  },
};

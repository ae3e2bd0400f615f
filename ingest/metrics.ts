import { Counter, type Registry } from 'prom-client';

/** Counters of what ingest did, by source (web, app, pos, import, cmp, catalog) and reason; served at /metrics. */
export interface IngestMetrics {
  readonly accepted: Counter<'source'>;
  readonly rejected: Counter<'source' | 'reason'>;
  readonly suppressed: Counter<'source'>;
}

const byRegistry = new WeakMap<Registry, IngestMetrics>();

/** The ingest counters of a registry, created on first use (a registry refuses a name twice). */
export function createIngestMetrics(registry: Registry): IngestMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const metrics: IngestMetrics = {
    accepted: new Counter({
      name: 'tandem_ingest_events_accepted_total',
      help: 'Events durably appended to the log',
      labelNames: ['source'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'tandem_ingest_events_rejected_total',
      help: 'Requests or rows refused as bad input',
      labelNames: ['source', 'reason'],
      registers: [registry],
    }),
    suppressed: new Counter({
      name: 'tandem_ingest_events_suppressed_total',
      help: 'Events dropped because an identifier is suppressed',
      labelNames: ['source'],
      registers: [registry],
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}

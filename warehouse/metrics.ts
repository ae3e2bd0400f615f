/**
 * The embedded warehouse's memory as Prometheus metrics. chDB is ClickHouse
 * inside this process, so its allocations are part of the process's memory:
 * `tandem_chdb_memory_bytes{what="tracked"}` is all ClickHouse accounts for
 * (queries, merges, caches), the others its caches one by one. On a
 * ClickHouse server, watch the server's own metrics instead.
 */
import { Gauge, type Registry } from 'prom-client';
import { selectRows } from './select.js';
import type { Warehouse } from './warehouse.js';

/** `system.metrics` names → the `what` label. */
const MEASURES: Readonly<Record<string, string>> = {
  MemoryTracking: 'tracked',
  MarkCacheBytes: 'mark_cache',
  PrimaryIndexCacheBytes: 'primary_index_cache',
  UncompressedCacheBytes: 'uncompressed_cache',
  IndexMarkCacheBytes: 'index_mark_cache',
  QueryCacheBytes: 'query_cache',
  QueryConditionCacheBytes: 'query_condition_cache',
};

const NAMES = Object.keys(MEASURES)
  .map((name) => `'${name}'`)
  .join(', ');

/** Registers `tandem_chdb_memory_bytes` when the warehouse is chDB; read at each scrape. */
export function registerChdbMetrics(warehouse: Warehouse, registry: Registry): void {
  if (warehouse.kind !== 'chdb') return;
  new Gauge({
    name: 'tandem_chdb_memory_bytes',
    help: 'Memory of the embedded ClickHouse (chDB) in this process: all it tracks, and each cache',
    labelNames: ['what'],
    registers: [registry],
    async collect() {
      // Constant names, no parameters: chDB runs parameterised queries one at
      // a time in the whole process, and a scrape should not queue behind the API.
      const rows = await selectRows<{ metric: string; value: number }>(
        warehouse.client,
        `SELECT metric, value FROM system.metrics WHERE metric IN (${NAMES})`,
      ).catch(() => []);
      this.reset();
      for (const { metric, value } of rows) {
        const what = MEASURES[metric];
        if (what) this.set({ what }, Number(value));
      }
    },
  });
}

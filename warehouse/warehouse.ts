/**
 * How Tandem reaches ClickHouse: one factory for both deployments.
 *
 * - Embedded (default): chDB, ClickHouse in this process, with its data under
 *   `<data dir>/clickhouse`, through `@clickhouse/client` over
 *   `chdb/connection`.
 * - Server: `@clickhouse/client` over HTTP to `TANDEM_CLICKHOUSE_URL` (a
 *   server, or any node of a cluster when `TANDEM_CLICKHOUSE_CLUSTER` names
 *   it, which makes the DDL `ON CLUSTER` with replicated engines).
 *
 * Everything above this file uses the same `ClickHouseClient` and the same
 * SQL on both. Two clients are opened: `client` for the projector and the API
 * (reads and writes), and `analyst`, read-only from its first query, for the
 * SQL endpoint. chDB keeps the settings a query passes on its connection, so
 * the two never share one; settings every query needs are set per client.
 */
import {
  type ClickHouseClient,
  type ClickHouseClientConfigOptions,
  type ClickHouseSettings,
  createClient,
} from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';

export type WarehouseTarget =
  | { readonly kind: 'chdb'; readonly path: string }
  | { readonly kind: 'server'; readonly url: string };

export interface WarehouseOptions {
  readonly target: WarehouseTarget;
  /** Database holding Tandem's tables; created when missing. */
  readonly database: string;
  /** Cluster name from the server's `remote_servers`: DDL runs `ON CLUSTER` with replicated engines. */
  readonly cluster?: string | undefined;
}

export interface Warehouse {
  readonly kind: WarehouseTarget['kind'];
  readonly database: string;
  readonly cluster: string | undefined;
  /** Reads and writes: projections, segments, the API. */
  readonly client: ClickHouseClient;
  /** Read-only (`readonly = 1` from its first query): analysts' SQL. */
  readonly analyst: ClickHouseClient;
  /** The fully qualified name of a table, e.g. `tandem.events`. */
  table(name: string): string;
  close(): Promise<void>;
}

/**
 * Settings every Tandem query runs with:
 * - `final`: reads see each key's newest row only, so a row written twice
 *   (a re-delivered batch) counts once before ClickHouse merges the parts;
 * - 64-bit integers as JSON numbers, the same on chDB and a server.
 *
 * Times are written in ClickHouse's basic format (`clickhouseTime`): the
 * `best_effort` parser that would take ISO-8601 costs a third of the insert
 * rate (measured on chDB with the `events` rows).
 */
export const QUERY_SETTINGS: ClickHouseSettings = {
  final: 1,
  output_format_json_quote_64bit_integers: 0,
};

/** A time as a DateTime64(3, 'UTC') column takes it: `2026-01-08 13:31:24.735`. */
export function clickhouseTime(time: string | number | Date): string {
  const iso =
    typeof time === 'string' && time.length === 24 && time.endsWith('Z')
      ? time
      : new Date(time).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

/** Opens the warehouse `options` names. Apply the migrations (`migrate`) before using the tables. */
export async function openWarehouse(options: WarehouseOptions): Promise<Warehouse> {
  const client = connect(options.target, QUERY_SETTINGS);
  const analyst = connect(options.target, { ...QUERY_SETTINGS, readonly: '1' });
  const { database, cluster } = options;
  return {
    kind: options.target.kind,
    database,
    cluster,
    client,
    analyst,
    table: (name) => `${database}.${name}`,
    async close() {
      await Promise.all([analyst.close(), client.close()]);
    },
  };
}

function connect(target: WarehouseTarget, settings: ClickHouseSettings): ClickHouseClient {
  if (target.kind === 'server') {
    return createClient({
      url: target.url,
      clickhouse_settings: settings,
      request_timeout: 300_000,
      application: 'tandem',
    });
  }
  // chdb/connection implements @clickhouse/client-common's Connection, which
  // @clickhouse/client bundles as its own copy: the same shape, two declarations.
  const connection = createChdbConnection({ path: target.path }) as unknown as NonNullable<
    ClickHouseClientConfigOptions['connection']
  >;
  return createClient({ connection, clickhouse_settings: settings });
}

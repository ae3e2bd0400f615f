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
 * SQL on both. Three clients are opened: `client` for the API, segments and
 * recommendations (reads and writes); `writer` for the projector's inserts
 * (rows, not a client: see `WarehouseWriter`); and `analyst`, read-only from
 * its first query, for the SQL endpoint. chDB keeps the settings a query
 * passes on its connection, so the analyst never shares one; settings every
 * query needs are set per client. A chDB
 * connection runs one query at a time, so the projector has its own: under
 * load, reads queued on `client` held its inserts back until the warehouse
 * fell minutes behind. On a server, `writer` inserts through `client` (HTTP
 * connections are pooled).
 *
 * The analyst client carries its limits (time, memory, result size) from its
 * creation: once `readonly = 1` holds, no query can change a setting, so an
 * analyst cannot lift them with a `SETTINGS` clause either.
 */
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  type ClickHouseClient,
  type ClickHouseClientConfigOptions,
  type ClickHouseSettings,
  createClient,
} from '@clickhouse/client';
import { type ChdbConnection, createChdbConnection } from 'chdb/connection';

export type WarehouseTarget =
  | { readonly kind: 'chdb'; readonly path: string }
  | { readonly kind: 'server'; readonly url: string };

export interface WarehouseOptions {
  readonly target: WarehouseTarget;
  /** Database holding Tandem's tables; created when missing. */
  readonly database: string;
  /** Cluster name from the server's `remote_servers`: DDL runs `ON CLUSTER` with replicated engines. */
  readonly cluster?: string | undefined;
  /** Limits of the analysts' connection; each one missing takes its default. */
  readonly analystLimits?: Partial<AnalystLimits> | undefined;
}

/** What one analyst query may use before ClickHouse stops it. */
export interface AnalystLimits {
  /** Seconds a query may run (`max_execution_time`). */
  readonly maxExecutionSeconds: number;
  /** Bytes of memory a query may use (`max_memory_usage`). */
  readonly maxMemoryBytes: number;
  /** Rows a result may have (`max_result_rows`). */
  readonly maxResultRows: number;
  /** Bytes a result may have, uncompressed (`max_result_bytes`). */
  readonly maxResultBytes: number;
}

/** 30 s, 2 GiB of memory, a million rows, 512 MiB of result. */
export const DEFAULT_ANALYST_LIMITS: AnalystLimits = {
  maxExecutionSeconds: 30,
  maxMemoryBytes: 2 * 1024 ** 3,
  maxResultRows: 1_000_000,
  maxResultBytes: 512 * 1024 ** 2,
};

export interface Warehouse {
  readonly kind: WarehouseTarget['kind'];
  readonly database: string;
  readonly cluster: string | undefined;
  /** Reads and writes: segments, recommendations, privacy, the API. */
  readonly client: ClickHouseClient;
  /** The projector's inserts: its own connection on chDB, `client`'s on a server. */
  readonly writer: WarehouseWriter;
  /** Read-only (`readonly = 1` from its first query), limited, in `database`: analysts' SQL. */
  readonly analyst: ClickHouseClient;
  /** The limits the `analyst` client runs with. */
  readonly analystLimits: AnalystLimits;
  /** The fully qualified name of a table, e.g. `tandem.events`. */
  table(name: string): string;
  close(): Promise<void>;
}

/** A row to insert: column name → value (a missing or undefined value takes the column's default). */
export type Row = Readonly<Record<string, unknown>>;

/**
 * Rows of one table, encoded as they are added: one `JSONCompactEachRow`
 * line (a JSON array in `columns` order) each. A batch of them holds flat
 * strings rather than object graphs, which the garbage collector would copy
 * at every young-generation collection until the batch is written (that
 * copying was 29% of the projector's time).
 */
export class EncodedRows {
  readonly lines: string[] = [];
  /**
   * @param table the qualified name rows go to (`tandem.events`)
   * @param columns its columns, in the order of each line's values
   */
  constructor(
    readonly table: string,
    readonly columns: readonly string[],
  ) {}

  /** Adds `row`; a missing or undefined value takes the column's default, a key not among `columns` is left out. */
  add(row: Row): void {
    this.lines.push(JSON.stringify(this.columns.map((column) => row[column] ?? null)));
  }

  get length(): number {
    return this.lines.length;
  }
}

/**
 * Bulk inserts, as fast as the target takes them. On chDB the payload is
 * handed over as bytes beside the SQL, where the client's `insert` would
 * build one string of both for chDB to parse again; with the compact format,
 * measured on the projector's rows, an insert of 1.1M rows went from 13.5 s
 * to 8.1 s.
 */
export interface WarehouseWriter {
  /** Inserts `rows` into their table in one insert. */
  insert(rows: EncodedRows): Promise<void>;
}

/**
 * Settings of the writer's inserts:
 * - `optimize_on_insert = 0`: ReplacingMergeTree would otherwise sort and
 *   collapse each insert's rows by key before writing them, work that reads
 *   with `final` and ClickHouse's merges do anyway (15% of the `events`
 *   insert, measured on chDB);
 * - `input_format_null_as_default`: a `null` (a value the row did not have)
 *   takes the column's default, as a missing key does in `JSONEachRow`.
 */
export const INSERT_SETTINGS = {
  optimize_on_insert: 0,
  input_format_null_as_default: 1,
} as const;

/**
 * Settings every Tandem query runs with:
 * - `final`: reads see each key's newest row only, so a row written twice
 *   (a re-delivered batch) counts once before ClickHouse merges the parts;
 *   per partition (`do_not_merge_across_partitions_select_final`): a row's
 *   key never changes partition (`events` by the month it occurred), and
 *   ClickHouse's own merges never cross one, so the answer is the same and a
 *   partition already merged into one part is read without merging;
 * - 64-bit integers as JSON numbers, the same on chDB and a server.
 *
 * Times are written in ClickHouse's basic format (`clickhouseTime`): the
 * `best_effort` parser that would take ISO-8601 costs a third of the insert
 * rate (measured on chDB with the `events` rows).
 */
export const QUERY_SETTINGS: ClickHouseSettings = {
  final: 1,
  do_not_merge_across_partitions_select_final: 1,
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

/** The other way: `2026-01-08 13:31:24.735` (a DateTime64(3, 'UTC') read back) → ISO-8601. */
export function isoTime(text: string): string {
  return `${text.replace(' ', 'T')}Z`;
}

/** Opens the warehouse `options` names. Apply the migrations (`migrate`) before using the tables. */
export async function openWarehouse(options: WarehouseOptions): Promise<Warehouse> {
  const { database, cluster, target } = options;
  const analystLimits = { ...DEFAULT_ANALYST_LIMITS, ...options.analystLimits };
  const { client, writer, closeWriter } = openWriter(target);
  const analyst = connect(
    target,
    {
      ...QUERY_SETTINGS,
      ...limitSettings(analystLimits),
      // Last: chDB runs these as `SET`s in order before every query, and once
      // readonly = 1 holds, a SET to a different value fails (re-setting the
      // same value passes).
      readonly: '1',
    },
    database,
  );
  if (target.kind === 'chdb') {
    // chDB ignores the client's `database`; a `USE` sticks to the session, so
    // analysts can write `FROM events`. It needs the database to exist.
    try {
      await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteName(database)}` });
      await analyst.command({ query: `USE ${quoteName(database)}` });
    } catch (error) {
      await Promise.allSettled([analyst.close(), closeWriter(), client.close()]);
      throw error;
    }
  }
  return {
    kind: target.kind,
    database,
    cluster,
    client,
    writer,
    analyst,
    analystLimits,
    table: (name) => `${database}.${name}`,
    async close() {
      await Promise.all([analyst.close(), closeWriter()]);
      await client.close();
    },
  };
}

function limitSettings(limits: AnalystLimits): ClickHouseSettings {
  return {
    max_execution_time: limits.maxExecutionSeconds,
    max_memory_usage: String(limits.maxMemoryBytes),
    max_result_rows: String(limits.maxResultRows),
    max_result_bytes: String(limits.maxResultBytes),
    // Over a limit is an error, never a silently cut result.
    result_overflow_mode: 'throw',
    // apache-arrow cannot read the LZ4 frames ClickHouse writes by default.
    output_format_arrow_compression_method: 'none',
  };
}

const quoteName = (name: string) => `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``;

/**
 * The API's client and the projector's writer. On a server the writer
 * inserts through the client (HTTP connections are pooled). On chDB it has
 * its own connection, which runs one query at a time: reads queued in front
 * of the projector's inserts once let the warehouse fall minutes behind.
 */
function openWriter(target: WarehouseTarget): {
  client: ClickHouseClient;
  writer: WarehouseWriter;
  closeWriter: () => Promise<void>;
} {
  if (target.kind === 'server') {
    const client = connect(target, QUERY_SETTINGS);
    return {
      client,
      writer: {
        async insert(rows) {
          if (rows.length === 0) return;
          // `exec` sends the stream as the body of the INSERT, as it is.
          const result = await client.exec({
            query: `INSERT INTO ${rows.table} (${rows.columns.join(', ')}) FORMAT JSONCompactEachRow`,
            values: Readable.from([rows.lines.join('\n')]),
            clickhouse_settings: INSERT_SETTINGS,
          });
          result.stream.resume();
          await finished(result.stream);
        },
      },
      closeWriter: async () => undefined,
    };
  }
  const connection = chdbConnection(target);
  return {
    client: connect(target, QUERY_SETTINGS),
    writer: {
      async insert(rows) {
        if (rows.length === 0) return;
        const values = Buffer.from(rows.lines.join('\n'));
        await connection.run(() =>
          connection.native.chdb.rawInsert({
            table: rows.table,
            columns: rows.columns,
            values,
            format: 'JSONCompactEachRow',
            settings: INSERT_SETTINGS,
          }),
        );
      },
    },
    closeWriter: () => connection.close(),
  };
}

/** A client on `target`; `database`, when given, is the default database of its queries on a server. */
function connect(
  target: WarehouseTarget,
  settings: ClickHouseSettings,
  database?: string,
): ClickHouseClient {
  if (target.kind === 'server') {
    return createClient({
      url: target.url,
      ...(database === undefined ? {} : { database }),
      clickhouse_settings: settings,
      request_timeout: 300_000,
      application: 'tandem',
    });
  }
  return createClient({
    connection: chdbConnection(target).connection,
    clickhouse_settings: settings,
  });
}

type Connection = NonNullable<ClickHouseClientConfigOptions['connection']>;

/** A chDB connection (one session), with its queries run one at a time (see `drainingAfterFailures`). */
interface QueuedChdbConnection {
  /** The connection as `@clickhouse/client` takes it: every call queued. */
  readonly connection: Connection;
  /** The connection itself, for chDB's own calls (`chdb.rawInsert`); run them through `run`. */
  readonly native: ChdbConnection;
  /** Runs `call` when the session is free, and drains its leftovers when it fails. */
  run<T>(call: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function chdbConnection(target: { readonly path: string }): QueuedChdbConnection {
  const native = createChdbConnection({ path: target.path });
  // chdb/connection implements @clickhouse/client-common's Connection, which
  // @clickhouse/client bundles as its own copy: the same shape, two declarations.
  return drainingAfterFailures(native, native as unknown as Connection);
}

/**
 * chDB keeps what a failed query had already written (a JSON header, the
 * rows before a limit stopped it) in the session and puts it in front of the
 * next query's result: after a timeout the next `EXPLAIN` came back starting
 * with the failed query's JSON. So, on chDB, a failed query is followed by a
 * throw-away `SELECT 1` that takes the leftover, before any other query runs;
 * the queue costs nothing, since a chDB session runs one query at a time.
 */
function drainingAfterFailures(
  native: ChdbConnection,
  connection: Connection,
): QueuedChdbConnection {
  let tail: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(run: () => Promise<T>): Promise<T> => {
    const result = tail.then(async () => {
      try {
        return await run();
      } catch (error) {
        await connection.query({ query: 'SELECT 1' }).catch(() => undefined);
        throw error;
      }
    });
    tail = result.catch(() => undefined);
    return result;
  };
  return {
    connection: {
      query: (params) => oneAtATime(() => connection.query(params)),
      exec: (params) => oneAtATime(() => connection.exec(params)),
      command: (params) => oneAtATime(() => connection.command(params)),
      insert: (params) => oneAtATime(() => connection.insert(params)),
      ping: (params) => connection.ping(params),
      close: () => connection.close(),
    },
    native,
    run: oneAtATime,
    close: () => connection.close(),
  };
}

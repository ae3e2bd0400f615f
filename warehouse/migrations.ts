/**
 * Versioned, idempotent migrations of the warehouse schema, applied at start.
 *
 * Each migration is a list of statements that may run again harmlessly (`IF
 * NOT EXISTS`, `OR REPLACE`); its version is recorded in `schema_migrations`
 * once all its statements ran, so a start interrupted half-way applies it
 * again. Migrations are never edited once released: a schema change is a new
 * migration that alters the tables, together with the change to the specs in
 * `tables.ts` (a test checks the migrated schema equals the specs).
 */
import { RECO_POPULARITY, RECOMMENDATION_TABLES } from './recommendation-tables.js';
import {
  CHECKPOINTS,
  CONSENT_HISTORY,
  CONSENTS,
  columnSql,
  createTableSql,
  type DdlOptions,
  EVENT_CHANNELS_PROJECTION,
  EVENTS,
  IDENTIFIER_KEY,
  IDENTITY,
  ORDER_LINES,
  ORDERS,
  onCluster,
  PRODUCT_INTERACTIONS,
  PROFILE_ID_INDEX,
  PROFILE_KEY,
  PROFILE_TRAITS,
  PROFILES,
  PROJECTED_TABLES,
  quote,
  SEGMENT_TABLES,
  settingsSql,
  type TableSpec,
} from './tables.js';
import { createViewSql, VIEWS } from './views.js';
import { clickhouseTime, type Warehouse } from './warehouse.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  statements(options: DdlOptions): string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'projected tables, checkpoints and profile views',
    statements: (options) => [
      ...[...PROJECTED_TABLES, CHECKPOINTS].map((spec) => createTableSql(spec, options)),
      ...VIEWS.map((view) => createViewSql(view, options)),
    ],
  },
  {
    version: 2,
    name: 'segment membership and its history',
    statements: (options) => SEGMENT_TABLES.map((spec) => createTableSql(spec, options)),
  },
  {
    version: 3,
    name: 'recommendation models',
    statements: (options) => RECOMMENDATION_TABLES.map((spec) => createTableSql(spec, options)),
  },
  {
    version: 4,
    name: 'erasure targets (in memory only); consent from consent-management platforms',
    statements: (options) => [
      // What an erasure deletes by, for its mutations to read: Memory, so never on a disk.
      `CREATE TABLE IF NOT EXISTS ${options.database}.privacy_erasure_targets${onCluster(options)}
       (request String, kind LowCardinality(String), value String) ENGINE = Memory`,
      ...commentSql(EVENTS, 'source_kind', options),
      ...commentSql(CONSENTS, 'source', options),
      ...commentSql(CONSENT_HISTORY, 'source', options),
    ],
  },
  {
    version: 5,
    name: 'recommendations: popularity within each category; identity indexed by profile',
    statements: (options) => [
      `ALTER TABLE ${options.database}.${IDENTITY.name}${onCluster(options)} ADD INDEX IF NOT EXISTS ${PROFILE_ID_INDEX}`,
      `ALTER TABLE ${options.database}.${IDENTITY.name}${onCluster(options)} MATERIALIZE INDEX ${PROFILE_ID_INDEX.split(' ')[0]}`,
      `ALTER TABLE ${options.database}.${RECO_POPULARITY.name}${onCluster(options)} MODIFY COMMENT ${quote(RECO_POPULARITY.comment)}`,
      ...['scope', 'scope_id', 'score'].flatMap((column) =>
        commentSql(RECO_POPULARITY, column, options),
      ),
    ],
  },
  {
    version: 6,
    name: 'product interactions ordered by identifier, filled from events',
    statements: (options) => {
      const columns = PRODUCT_INTERACTIONS.columns.map((column) => column.name).join(', ');
      return [
        createTableSql(PRODUCT_INTERACTIONS, options),
        // Run again after an interruption, it writes the same rows again: the table keeps one of each.
        `INSERT INTO ${options.database}.${PRODUCT_INTERACTIONS.name} (${columns})
         SELECT ${columns} FROM ${options.database}.${EVENTS.name} WHERE notEmpty(product_ids)`,
      ];
    },
  },
  {
    version: 7,
    name: 'fixed-width identifier and profile keys for joins; the channels each identifier was seen on',
    statements: (options) => [
      ...[EVENTS, ORDERS, ORDER_LINES, IDENTITY].flatMap((spec) =>
        addMaterializedSql(spec, IDENTIFIER_KEY.name, options),
      ),
      ...[IDENTITY, PROFILES, PROFILE_TRAITS, CONSENTS, CONSENT_HISTORY].flatMap((spec) =>
        addMaterializedSql(spec, PROFILE_KEY.name, options),
      ),
      `ALTER TABLE ${options.database}.${EVENTS.name}${onCluster(options)} MODIFY SETTING ${settingsSql(EVENTS.settings ?? {})}`,
      `ALTER TABLE ${options.database}.${EVENTS.name}${onCluster(options)} ADD PROJECTION IF NOT EXISTS ${EVENT_CHANNELS_PROJECTION}`,
      // A mutation: existing parts get the projection in the background; reads need none meanwhile.
      `ALTER TABLE ${options.database}.${EVENTS.name}${onCluster(options)} MATERIALIZE PROJECTION ${EVENT_CHANNELS_PROJECTION.split(' ')[0]}`,
    ],
  },
];

/**
 * Adds `spec`'s materialized `column` where the spec has it (after the same
 * column, so a migrated table reads like a new one) and computes it for the
 * rows already there, in the background: until then reads compute it.
 */
function addMaterializedSql(spec: TableSpec, column: string, options: DdlOptions): string[] {
  const at = spec.columns.findIndex((each) => each.name === column);
  const added = spec.columns[at];
  if (!added?.materialized) throw new Error(`${spec.name} has no materialized column ${column}`);
  const table = `${options.database}.${spec.name}${onCluster(options)}`;
  const after = at === 0 ? ' FIRST' : ` AFTER ${spec.columns[at - 1]?.name}`;
  return [
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${columnSql(added)}${after}`,
    `ALTER TABLE ${table} MATERIALIZE COLUMN ${added.name}`,
  ];
}

/** `COMMENT COLUMN` bringing a column's comment in line with its spec. */
function commentSql(spec: TableSpec, column: string, options: DdlOptions): string[] {
  const comment = spec.columns.find((each) => each.name === column)?.comment;
  if (comment === undefined) throw new Error(`${spec.name} has no column ${column}`);
  return [
    `ALTER TABLE ${options.database}.${spec.name}${onCluster(options)} COMMENT COLUMN ${column} ${quote(comment)}`,
  ];
}

const MIGRATIONS_TABLE = 'schema_migrations';

export interface MigrationReport {
  readonly applied: readonly number[];
  readonly current: number;
}

/** Creates the database and applies the migrations not yet recorded, in order. */
export async function migrate(
  warehouse: Warehouse,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationReport> {
  const options: DdlOptions = { database: warehouse.database, cluster: warehouse.cluster };
  const { client } = warehouse;
  const cluster = onCluster(options);
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${warehouse.database}${cluster}` });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${warehouse.table(MIGRATIONS_TABLE)}${cluster}
(version UInt32, name String, applied_at DateTime64(3, 'UTC'))
ENGINE = ${warehouse.cluster ? "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', applied_at)" : 'ReplacingMergeTree(applied_at)'}
ORDER BY version
COMMENT 'Warehouse schema migrations applied, by version.'`,
  });
  const done = new Set(await appliedVersions(warehouse));
  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(migration.version)) continue;
    for (const statement of migration.statements(options))
      await client.command({ query: statement });
    await client.insert({
      table: warehouse.table(MIGRATIONS_TABLE),
      values: [
        {
          version: migration.version,
          name: migration.name,
          applied_at: clickhouseTime(Date.now()),
        },
      ],
      format: 'JSONEachRow',
    });
    applied.push(migration.version);
  }
  const versions = [...done, ...applied];
  return { applied, current: versions.length === 0 ? 0 : Math.max(...versions) };
}

/** Versions recorded in `schema_migrations`, ascending. */
export async function appliedVersions(warehouse: Warehouse): Promise<number[]> {
  const result = await warehouse.client.query({
    query: `SELECT version FROM ${warehouse.table(MIGRATIONS_TABLE)} ORDER BY version`,
    format: 'JSONEachRow',
  });
  return (await result.json<{ version: number }>()).map((row) => row.version);
}

/**
 * `docs/sql.md`, the analysts' reference, generated from what ClickHouse
 * reports about the migrated schema (table and column comments and types),
 * so the document cannot say what the DDL does not. A test regenerates it
 * and fails when the checked-in file differs; `npm run docs:sql` rewrites it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from './migrations.js';
import { RECOMMENDATION_TABLES } from './recommendation-tables.js';
import { CHECKPOINTS, PROJECTED_TABLES, SEGMENT_TABLES } from './tables.js';
import { VIEWS } from './views.js';
import { openWarehouse, type Warehouse } from './warehouse.js';

export const SQL_DOCS_FILE = fileURLToPath(new URL('../docs/sql.md', import.meta.url));

const INTRO = `# SQL reference: the warehouse tables

Generated from the migrated schema by \`npm run docs:sql\`; a test fails when
this file and the DDL disagree. Do not edit by hand.

Tandem projects the log into these tables (database \`tandem\` unless
\`TANDEM_CLICKHOUSE_DATABASE\` says otherwise). They are pseudonymous: people
appear as keyed identifier hashes and profile ids, never as names, emails or
phone numbers. Every table is a ReplacingMergeTree: Tandem's connections read
with \`final = 1\`, so each key's newest row is the only one a query sees; on
your own connection to a ClickHouse server, add \`FINAL\` after the table name
or \`SETTINGS final = 1\` to the query.

An event belongs to the profile that holds its identifier *now*: join
\`events\` (or \`orders\`, \`order_lines\`) to \`identity\` on
\`identifier_hash\`. A merge or an unmerge rewrites only \`identity\`, so the
join follows it at once. The views \`profile_events\` and \`profile_overview\`
do that join for you.

\`\`\`sql
-- Revenue per profile and channel, last 30 days
SELECT i.profile_id, o.channel, sum(o.revenue) AS revenue
FROM tandem.orders AS o
INNER JOIN tandem.identity AS i ON i.identifier_hash = o.identifier_hash
WHERE o.occurred_at >= now() - INTERVAL 30 DAY
GROUP BY i.profile_id, o.channel
ORDER BY revenue DESC
LIMIT 20
\`\`\`
`;

interface ColumnInfo {
  readonly table: string;
  readonly name: string;
  readonly type: string;
  readonly comment: string;
}

/** The reference as Markdown, from the schema of `warehouse` (migrated). */
export async function renderSqlDocs(warehouse: Warehouse): Promise<string> {
  const query = async <T>(sql: string) =>
    (
      await warehouse.client.query({
        query: sql,
        query_params: { db: warehouse.database },
        format: 'JSONEachRow',
      })
    ).json<T>();
  const tables = await query<{ name: string; comment: string; engine: string }>(
    'SELECT name, comment, engine FROM system.tables WHERE database = {db:String}',
  );
  const columns = await query<ColumnInfo>(
    'SELECT table, name, type, comment FROM system.columns WHERE database = {db:String} ORDER BY table, position',
  );
  const sections: string[] = [INTRO];
  const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const describe = (name: string, kind: string, notes?: Readonly<Record<string, string>>) => {
    const table = tables.find((candidate) => candidate.name === name);
    const rows = columns
      .filter((column) => column.table === name)
      .map(
        (column) =>
          `| \`${column.name}\` | \`${cell(column.type)}\` | ${cell(notes?.[column.name] ?? column.comment)} |`,
      );
    sections.push(
      [
        `## ${name} (${kind})`,
        '',
        table?.comment ?? '',
        '',
        '| column | type | meaning |',
        '| --- | --- | --- |',
        ...rows,
        '',
      ].join('\n'),
    );
  };
  for (const spec of PROJECTED_TABLES) describe(spec.name, 'table');
  for (const view of VIEWS) describe(view.name, 'view', view.columns);
  for (const spec of SEGMENT_TABLES) describe(spec.name, 'table, written by segment refreshes');
  for (const spec of RECOMMENDATION_TABLES)
    describe(spec.name, 'table, written by recommendation model refreshes');
  describe(CHECKPOINTS.name, 'table, for operators');
  return `${sections.join('\n')}`.replace(/\n+$/, '\n');
}

/** Renders the reference from a fresh chDB in a temp directory. */
export async function generateSqlDocs(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-sql-docs-'));
  const warehouse = await openWarehouse({
    target: { kind: 'chdb', path: dir },
    database: 'tandem',
  });
  try {
    await migrate(warehouse);
    return await renderSqlDocs(warehouse);
  } finally {
    await warehouse.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(SQL_DOCS_FILE, await generateSqlDocs());
  process.stdout.write(`wrote ${SQL_DOCS_FILE}\n`);
}

/**
 * What an analyst's SQL may do before it runs: read the documented tables and
 * views with one SELECT, and nothing else.
 *
 * Strategy, in three steps, each stricter than the last and none executing
 * the query before the previous one passed:
 *
 * 1. Lexical (`sql-statement.ts`, on `sql-lexer.ts`, which follows
 *    ClickHouse's own rules). chDB runs its text as several statements, so a
 *    `;` anywhere but at the end would start a second one — even inside the
 *    `EXPLAIN` of the next steps. One statement (a
 *    trailing `;` dropped), starting with SELECT, WITH or `(`; no SETTINGS,
 *    FORMAT or INTO OUTFILE clause; no name with a line break (which would
 *    forge lines in the EXPLAIN text read below).
 * 2. `EXPLAIN AST`: ClickHouse parses, executes nothing. Syntax errors are
 *    answered with their line and column. Refused: table functions (`file()`,
 *    `url()`, `numbers()`…), functions that reach past the tables (the scalar
 *    `file()` reads any file even on a read-only connection, `dictGet`,
 *    `joinGet`…), and any table named outside the documented ones unless it
 *    is a CTE of the query. This step must be thorough: the next one executes
 *    scalar subqueries (`WHERE x = (SELECT … FROM system.tables)`) while it
 *    folds constants, and their values can surface in its error messages.
 * 3. `EXPLAIN QUERY TREE`: ClickHouse resolves CTEs, subqueries, UNIONs, IN
 *    and views, and lists every table read as it will be read. Each must be a
 *    documented table or view in the warehouse database. This is the final
 *    word; step 2 only keeps step 3 from touching anything else. It also
 *    tells whether a SELECT has no FROM, which `sql-run.ts` must wrap for
 *    ClickHouse to apply the result limits.
 *
 * The analyst connection is read-only with fixed limits besides (warehouse.ts):
 * even what slipped past these steps could not write or change a setting.
 */
import { isTandemError } from '../../schemas/errors.js';
import { RECOMMENDATION_TABLES } from '../../warehouse/recommendation-tables.js';
import { CHECKPOINTS, PROJECTED_TABLES, SEGMENT_TABLES } from '../../warehouse/tables.js';
import { VIEWS } from '../../warehouse/views.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { analystError } from './sql-errors.js';
import { lex } from './sql-lexer.js';
import { analystStatement, at, refuse } from './sql-statement.js';

/** The tables and views analysts may read: those the docs describe. */
export const ANALYST_TABLES: readonly string[] = [
  ...PROJECTED_TABLES.map((table) => table.name),
  ...SEGMENT_TABLES.map((table) => table.name),
  ...RECOMMENDATION_TABLES.map((table) => table.name),
  ...VIEWS.map((view) => view.name),
];

/** A query parameter's value, for a `{name:Type}` placeholder. */
export type QueryParam = string | number | boolean | readonly (string | number | boolean)[];
/** Query parameters by name. */
export type QueryParams = Readonly<Record<string, QueryParam>>;

/** A query that passed the guard: the text to run and the tables it reads. */
export interface CheckedQuery {
  /** The one statement, without its trailing `;` and comments. */
  readonly statement: string;
  /** Documented tables and views it reads, without the database. */
  readonly tables: readonly string[];
  /**
   * A SELECT of it has no FROM (`SELECT 1`, a UNION branch). ClickHouse then
   * skips `max_result_rows` and `max_result_bytes`: `SELECT
   * arrayJoin(range(1e5))` returns all its rows under a limit of 200.
   */
  readonly withoutFrom: boolean;
}

/** Checks `query` for the analysts' connection; throws SQL_REFUSED (or a limit error) saying why not. */
export async function checkAnalystQuery(
  warehouse: Warehouse,
  query: string,
  params: QueryParams = {},
): Promise<CheckedQuery> {
  const { statement, cteNames, identifierParams } = analystStatement(query);
  for (const name of identifierParams) {
    const value = params[name];
    if (
      typeof value === 'string' &&
      !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/.test(value)
    )
      refuse(
        `parameter ${name} is an Identifier: give a plain name (letters, digits, _), not ${JSON.stringify(value)}`,
      );
  }
  const ast = parseTree(await explain(warehouse, 'AST', statement, params));
  checkAst(ast, { database: warehouse.database, cteNames, query });
  const tree = await explain(warehouse, 'QUERY TREE', statement, params);
  return { statement, ...tablesRead(tree, warehouse.database) };
}

const DOCUMENTED = new Set(ANALYST_TABLES);
const COLUMNS = new Set([
  ...[...PROJECTED_TABLES, ...SEGMENT_TABLES, ...RECOMMENDATION_TABLES].flatMap((table) =>
    table.columns.map((column) => column.name),
  ),
  ...VIEWS.flatMap((view) => Object.keys(view.columns)),
]);
/** ClickHouse's UNKNOWN_TABLE. */
const UNKNOWN_TABLE = 60;
/** Tables of the warehouse database that are not for analysts, not even under a CTE's name. */
const INTERNAL = new Set([CHECKPOINTS.name, 'schema_migrations']);
const notDocumented = (name: string) =>
  `table ${name} is not one of the documented tables: ${ANALYST_TABLES.join(', ')}`;

async function explain(
  warehouse: Warehouse,
  kind: 'AST' | 'QUERY TREE',
  statement: string,
  params: QueryParams,
): Promise<string[]> {
  const prefix = `EXPLAIN ${kind} `;
  try {
    // `default_format`, not a FORMAT clause: ClickHouse would give the clause
    // to the explained SELECT, not to the EXPLAIN. chDB takes it as an option
    // (not a sticky SET), a server as a URL parameter (not a setting). Each
    // line is a result row, so `max_result_rows` bounds an EXPLAIN too.
    const result = await warehouse.analyst.exec({
      query: `${prefix}${statement}`,
      query_params: params,
      clickhouse_settings: { default_format: 'TabSeparatedRaw' },
    });
    const chunks: Buffer[] = [];
    for await (const chunk of result.stream) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks)
      .toString('utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
  } catch (error) {
    const mapped = analystError(error, warehouse, statement, prefix);
    // "Unknown table expression identifier 'x' … Maybe you meant system.one?":
    // say what may be read instead.
    const clickhouse = isTandemError(mapped) ? mapped.details.clickhouse : undefined;
    if ((clickhouse as { code?: number } | undefined)?.code === UNKNOWN_TABLE) {
      const name = /identifier '([^']+)'/.exec((error as Error).message)?.[1] ?? 'named';
      refuse(notDocumented(name), { tables: [name] });
    }
    throw mapped;
  }
}

interface AstNode {
  readonly type: string;
  /** The rest of the line, without its `(alias …)` and `(children N)`. */
  readonly name: string;
  readonly alias: string | undefined;
  readonly children: AstNode[];
}

/** `EXPLAIN AST` lines as a tree: each line is one node, indented one space per level. */
function parseTree(lines: readonly string[]): AstNode[] {
  const roots: AstNode[] = [];
  const stack: { depth: number; node: AstNode }[] = [];
  for (const line of lines) {
    const depth = line.length - line.trimStart().length;
    const [, type = '', rest = ''] = /^(\S+) ?(.*)$/.exec(line.trim()) ?? [];
    const [, name = '', alias] =
      /^(.*?)(?: \(alias (.*)\))?$/.exec(rest.replace(/ \(children \d+\)$/, '')) ?? [];
    const node: AstNode = { type, name, alias, children: [] };
    while ((stack.at(-1)?.depth ?? -1) >= depth) stack.pop();
    (stack.at(-1)?.node.children ?? roots).push(node);
    stack.push({ depth, node });
  }
  return roots;
}

/** Functions that read past the query's tables: files, dictionaries, Join tables, server settings. */
const DENIED_FUNCTIONS = new Set(
  [
    'file',
    'joinGet',
    'joinGetOrNull',
    'hasColumnInTable',
    'catboostEvaluate',
    'getServerSetting',
    'getMergeTreeSetting',
    'getMacro',
    'showCertificate',
    'logTrace',
  ].map((name) => name.toLowerCase()),
);
const IN_FUNCTIONS = new Set(
  [
    'in',
    'notIn',
    'globalIn',
    'globalNotIn',
    'nullIn',
    'notNullIn',
    'globalNullIn',
    'globalNotNullIn',
  ].map((name) => name.toLowerCase()),
);

interface AstContext {
  readonly database: string;
  readonly cteNames: ReadonlySet<string>;
  /** Every alias the query gives (tables, expressions) and its CTE names. */
  readonly aliases: ReadonlySet<string>;
  readonly query: string;
}

function checkAst(roots: readonly AstNode[], context: Omit<AstContext, 'aliases'>): void {
  const root = roots[0];
  if (roots.length !== 1 || !root || !/^Select(WithUnion|IntersectExcept)Query$/.test(root.type))
    refuse(`only SELECT queries can run here; this one is a ${root?.type ?? 'nothing'}`);
  const aliases = new Set(context.cteNames);
  const collect = (node: AstNode) => {
    if (node.alias !== undefined) aliases.add(node.alias);
    node.children.forEach(collect);
  };
  collect(root);
  const full: AstContext = { ...context, aliases };
  const visit = (node: AstNode, parent: AstNode | undefined) => {
    if (node.type === 'Function') {
      const name = node.name.toLowerCase();
      if (parent?.type === 'TableExpression')
        refuse(
          `table functions are not allowed: ${node.name}() ${where(context.query, node.name)}; read the documented tables: ${ANALYST_TABLES.join(', ')}`,
        );
      if (DENIED_FUNCTIONS.has(name) || name.startsWith('dict') || name.startsWith('__'))
        refuse(
          `function ${node.name}() is not allowed: it reaches past the documented tables ${where(context.query, node.name)}`,
        );
      if (IN_FUNCTIONS.has(name)) checkInOperands(node, full);
    }
    if (node.type === 'TableIdentifier') checkTable(node.name, full);
    for (const child of node.children) visit(child, node);
  };
  visit(root, undefined);
}

/** A table named in FROM or JOIN: documented, in the warehouse database, or a CTE of the query. */
function checkTable(name: string, context: AstContext): void {
  const parts = name.split('.');
  const [first = '', second] = parts;
  const documented =
    parts.length === 2
      ? first === context.database && DOCUMENTED.has(second as string)
      : parts.length === 1 &&
        (DOCUMENTED.has(first) || (context.cteNames.has(first) && !INTERNAL.has(first)));
  if (!documented) refuse(notDocumented(name), { tables: [name] });
}

/**
 * `x IN name`: the name may be a table, a CTE, an alias of a constant or a
 * column (`1 IN product_ids`, `1 IN e.product_ids`). Anything else is a table
 * to refuse now, before the QUERY TREE step builds a set from it in a scalar
 * subquery: another database's (`system.one`) or an undocumented one of the
 * warehouse database.
 */
function checkInOperands(node: AstNode, context: AstContext): void {
  const operands = node.children[0]?.children.slice(1) ?? [];
  for (const operand of operands) {
    if (operand.type !== 'Identifier') continue;
    const parts = operand.name.split('.');
    const [qualifier = ''] = parts;
    if (parts.length === 1) {
      const known = DOCUMENTED.has(qualifier) || COLUMNS.has(qualifier);
      if (!(known || context.aliases.has(qualifier)) || INTERNAL.has(qualifier))
        refuse(`${notDocumented(qualifier)}, nor a column of one`, { tables: [qualifier] });
      continue;
    }
    if (qualifier === context.database) checkTable(parts.slice(0, 2).join('.'), context);
    else if (!(DOCUMENTED.has(qualifier) || context.aliases.has(qualifier)))
      refuse(notDocumented(parts.slice(0, 2).join('.')), { tables: [operand.name] });
  }
}

function where(query: string, name: string): string {
  const token = lex(query).find(
    (candidate) => candidate.kind === 'word' && candidate.text.toLowerCase() === name.toLowerCase(),
  );
  return token ? at(query, token) : '';
}

/**
 * The tables `EXPLAIN QUERY TREE` shows read, e.g. `TABLE id: 3, alias:
 * __table1, table_name: tandem.events, final: 1`. A query without FROM reads
 * `system.one` right under its JOIN TREE; any other `system.one` was named
 * and refused by the AST step.
 */
function tablesRead(lines: readonly string[], database: string) {
  const tables = new Set<string>();
  let withoutFrom = false;
  lines.forEach((line, i) => {
    const tableFunction = /^\s*TABLE_FUNCTION id: .*table_function_name: ([^,\s]+)/.exec(line);
    if (tableFunction) refuse(`table functions are not allowed: ${tableFunction[1]}()`);
    const table = /^\s*TABLE id: \d+, .*?table_name: ([^,\s]+)/.exec(line)?.[1];
    if (table === undefined) return;
    if (table === 'system.one' && lines[i - 1]?.trim() === 'JOIN TREE') {
      withoutFrom = true;
      return;
    }
    const [db, name = ''] = table.replaceAll('`', '').split('.');
    if (db !== database || !DOCUMENTED.has(name)) refuse(notDocumented(table), { tables: [table] });
    tables.add(name);
  });
  return { tables: [...tables], withoutFrom };
}

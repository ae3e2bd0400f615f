import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { ANALYST_TABLES, checkAnalystQuery, type QueryParams } from './sql-guard.js';
import { lex } from './sql-lexer.js';
import { runAnalystQuery, type SqlFormat } from './sql-run.js';
import {
  type AnalystWarehouse,
  DATABASE,
  type Footprint,
  openAnalystWarehouse,
} from './testing/analyst-warehouse.js';

/**
 * The analysts' SQL on a real chDB: what it refuses (and that nothing changed
 * after each attempt), what it answers, and its limits.
 */
let test: AnalystWarehouse;
let warehouse: Warehouse;
let before: Footprint;
beforeAll(async () => {
  test = await openAnalystWarehouse();
  warehouse = test.warehouse;
  before = await test.footprint();
});
afterAll(() => test?.close());

async function failure(promise: Promise<unknown>): Promise<TandemError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(TandemError);
  return error as TandemError;
}

async function run(query: string, format: SqlFormat = 'json', params?: QueryParams) {
  const result = await runAnalystQuery(warehouse, { query, format, params });
  const chunks: Buffer[] = [];
  for await (const chunk of result.stream) chunks.push(chunk as Buffer);
  return { ...result, body: Buffer.concat(chunks) };
}

async function rows<T>(query: string, params?: QueryParams): Promise<T[]> {
  return JSON.parse((await run(query, 'json', params)).body.toString()).data as T[];
}

describe(checkAnalystQuery.name, () => {
  it.each([
    [
      'an INSERT',
      'INSERT INTO events (event_id) VALUES (generateUUIDv4())',
      /only SELECT.*starts with INSERT/,
    ],
    ['an ALTER … DELETE', 'ALTER TABLE events DELETE WHERE 1', /only SELECT/],
    ['a DELETE', 'DELETE FROM events WHERE 1', /only SELECT/],
    ['a DROP', 'DROP TABLE events', /only SELECT/],
    ['a TRUNCATE', 'TRUNCATE TABLE events', /only SELECT/],
    ['a CREATE', 'CREATE TABLE stolen ENGINE = Memory AS SELECT * FROM events', /only SELECT/],
    ['a SYSTEM command', 'SYSTEM DROP MARK CACHE', /only SELECT/],
    ['a SET', 'SET readonly = 0', /only SELECT/],
    ['a USE', 'USE system', /only SELECT/],
    [
      'system.tables',
      'SELECT * FROM system.tables',
      /table system\.tables is not one of the documented tables: events, product_interactions, orders/,
    ],
    [
      'system.one in a subquery',
      'SELECT count() FROM events WHERE 1 IN (SELECT dummy + 1 FROM system.one)',
      /system\.one is not one/,
    ],
    [
      'system.one as an IN set',
      'SELECT count() FROM events WHERE 0 IN system.one',
      /system\.one is not one/,
    ],
    [
      'the checkpoints as an IN set',
      "SELECT 'main' IN (projector_checkpoints)",
      /projector_checkpoints is not one of the documented tables: .*, nor a column of one/,
    ],
    [
      'a scalar subquery over system.tables',
      'SELECT * FROM events WHERE event_id = (SELECT toUUID(name) FROM system.tables LIMIT 1)',
      /system\.tables is not one/,
    ],
    [
      'information_schema',
      'SELECT * FROM information_schema.tables',
      /information_schema\.tables is not one/,
    ],
    [
      'file()',
      "SELECT * FROM file('/etc/passwd', 'LineAsString')",
      /table functions are not allowed: file\(\) \(line 1, column 15\)/,
    ],
    [
      'the file() function',
      "SELECT toUInt8(file('/etc/hostname'))",
      /function file\(\) is not allowed/,
    ],
    ['file() in an IN', "SELECT 'x' IN file('/etc/passwd')", /function file\(\) is not allowed/],
    [
      'url()',
      "SELECT * FROM url('http://127.0.0.1:1/x', 'LineAsString')",
      /table functions are not allowed: url\(\)/,
    ],
    [
      's3()',
      "SELECT * FROM s3('http://127.0.0.1:1/bucket/x.csv')",
      /table functions are not allowed: s3\(\)/,
    ],
    [
      'remote()',
      "SELECT * FROM remote('127.0.0.1', system.one)",
      /table functions are not allowed: remote\(\)/,
    ],
    ['numbers()', 'SELECT * FROM numbers(10)', /table functions are not allowed: numbers\(\)/],
    [
      'merge()',
      "SELECT * FROM merge('system', '.*')",
      /table functions are not allowed: merge\(\)/,
    ],
    [
      'an EXPLAIN subquery',
      'SELECT * FROM (EXPLAIN SELECT * FROM system.tables)',
      /table functions are not allowed: viewExplain\(\)/,
    ],
    ['dictGet()', "SELECT dictGet('dict', 'value', 1)", /function dictGet\(\) is not allowed/],
    [
      'joinGet()',
      "SELECT joinGet('tandem_sql.events', 'order_id', 1)",
      /function joinGet\(\) is not allowed/,
    ],
    ['SETTINGS readonly=0', 'SELECT 1 SETTINGS readonly=0', /SETTINGS clause is not allowed/],
    [
      'SETTINGS max_execution_time=999',
      'SELECT count() FROM events SETTINGS max_execution_time=999',
      /SETTINGS clause/,
    ],
    [
      'two statements',
      'SELECT 1; DROP TABLE events',
      /one statement only: another starts after the ; \(line 1, column 11\)/,
    ],
    [
      'a /* */ comment hiding a second statement',
      'SELECT 1 /* x */ ; DROP TABLE events',
      /one statement only/,
    ],
    [
      'a -- comment hiding a second statement',
      'SELECT 1 -- x\n; DROP TABLE events',
      /one statement only: another starts after the ; \(line 2, column 3\)/,
    ],
    [
      'a heredoc before a second statement',
      "SELECT $$'$$; DROP TABLE events -- '",
      /one statement only/,
    ],
    [
      'an exponent before a second statement',
      'SELECT 1e--x; DROP TABLE events',
      /one statement only/,
    ],
    ['\\G', 'SELECT 1 \\G', /\\G is not allowed/],
    [
      'INTO OUTFILE',
      "SELECT * FROM events INTO OUTFILE '/tmp/tandem-stolen.csv'",
      /INTO OUTFILE is not allowed/,
    ],
    ['FORMAT', 'SELECT * FROM events FORMAT CSV', /FORMAT clause is not allowed/],
    [
      'the checkpoints',
      'SELECT * FROM projector_checkpoints',
      /projector_checkpoints is not one of the documented/,
    ],
    [
      'the checkpoints, qualified',
      `SELECT * FROM ${DATABASE}.projector_checkpoints`,
      /projector_checkpoints is not one/,
    ],
    ['schema_migrations', 'SELECT * FROM schema_migrations', /schema_migrations is not one/],
    [
      'a CTE named like a documented table over system.tables',
      'WITH events AS (SELECT * FROM system.tables) SELECT * FROM events',
      /system\.tables is not one/,
    ],
    [
      'a CTE named like the checkpoints',
      'WITH projector_checkpoints AS (SELECT 1) SELECT * FROM projector_checkpoints',
      /projector_checkpoints is not one/,
    ],
    [
      'a documented table of another database',
      'SELECT * FROM default.events',
      /default\.events is not one/,
    ],
    ['an unknown table', 'SELECT * FROM nope', /table nope is not one of the documented tables/],
    ['a line break in a quoted name', 'SELECT 1 AS `a\n Function file`', /line break/],
  ])('refuses %s', async (_name, query, message) => {
    const error = await failure(checkAnalystQuery(warehouse, query));
    expect(error.code).toBe(ErrorCodes.SQL_REFUSED);
    expect(error.message).toMatch(message);
    // Nothing leaked from what was refused (the scalar subquery's value, a file).
    expect(error.message).not.toMatch(/CHARACTER_SETS|root:|COLUMNS/);
    expect(await test.footprint()).toEqual(before);
  });

  it('refuses a table given as an Identifier parameter', async () => {
    const query = 'SELECT * FROM {t:Identifier}';
    const error = await failure(checkAnalystQuery(warehouse, query, { t: 'system.tables' }));
    expect(error.message).toMatch(/system\.tables is not one/);
    const forged = await failure(
      checkAnalystQuery(warehouse, query, { t: 'events\n Function file' }),
    );
    expect(forged.message).toMatch(/parameter t is an Identifier: give a plain name/);
  });

  it('answers a syntax error with its line and column in the analyst’s query', async () => {
    const error = await failure(checkAnalystQuery(warehouse, 'SELECT *\nFROM events WHERE'));
    expect(error.code).toBe(ErrorCodes.SQL_REFUSED);
    expect(error.message).toMatch(
      /^syntax error at line 2, column 18, at the end of the query; expected one of: /,
    );
  });

  it('takes columns, aliases and documented tables on the right of IN', async () => {
    const check = (query: string) => checkAnalystQuery(warehouse, query).then((c) => c.tables);
    expect(await check("SELECT count() FROM events WHERE 'SKU-1' IN product_ids")).toEqual([
      'events',
    ]);
    expect(await check("SELECT count() FROM events AS e WHERE 'SKU-1' IN e.product_ids")).toEqual([
      'events',
    ]);
    expect(await check('WITH (1, 2) AS t SELECT count() FROM events WHERE position IN t')).toEqual([
      'events',
    ]);
    expect(await check('SELECT count() FROM identity WHERE identifier_hash IN events')).toEqual([
      'identity',
      'events',
    ]);
  });

  it('lists the tables and views a query reads, through CTEs, joins, views and unions', async () => {
    const check = (query: string) => checkAnalystQuery(warehouse, query).then((c) => c.tables);
    expect(await check('SELECT 1')).toEqual([]);
    expect(await check(`SELECT count() FROM ${DATABASE}.events`)).toEqual(['events']);
    expect(
      await check(
        'WITH o AS (SELECT * FROM orders) SELECT * FROM o JOIN identity AS i ON i.identifier_hash = o.identifier_hash',
      ),
    ).toEqual(['orders', 'identity']);
    expect(
      await check(
        'SELECT profile_id FROM profile_events UNION ALL SELECT profile_id FROM profile_overview',
      ),
    ).toEqual(['profile_events', 'profile_overview']);
    expect(ANALYST_TABLES).toContain('consent_history');
  });

  it('finds statement ends where ClickHouse does', async () => {
    const hidden = [
      "SELECT 'a;b'",
      "SELECT 'it\\'s;'",
      "SELECT 'it''s;'",
      'SELECT $$;$$',
      'SELECT $t$;$$;$t$',
      'SELECT 1 /* ; */',
      'SELECT 1 /* /* ; */ ; */',
      'SELECT 1 -- ;\n',
      'SELECT 1 // ;\n',
      'SELECT 1 # ;\n',
      'SELECT `a;b` FROM (SELECT 1 AS `a;b`)',
    ];
    for (const sql of hidden) {
      const text = `${sql}; SELECT 'second'`;
      expect(
        lex(text).filter((token) => token.kind === 'semicolon'),
        sql,
      ).toHaveLength(1);
      // The analyst connection is read-only: running two statements here is harmless.
      const result = await warehouse.analyst.exec({
        query: text,
        clickhouse_settings: { default_format: 'TabSeparatedRaw' },
      });
      let output = '';
      for await (const chunk of result.stream) output += chunk;
      expect(output.trimEnd().split('\n'), sql).toHaveLength(2);
    }
  });
});

describe(runAnalystQuery.name, () => {
  it('answers JSON as ClickHouse writes it, with meta, data, rows and statistics', async () => {
    const result = await run(
      'SELECT channel, count() AS n FROM events GROUP BY channel ORDER BY channel;',
    );
    expect(result.contentType).toBe('application/json; charset=utf-8');
    const body = JSON.parse(result.body.toString());
    expect(body.meta).toEqual([
      { name: 'channel', type: 'LowCardinality(String)' },
      { name: 'n', type: 'UInt64' },
    ]);
    expect(body.data).toEqual([
      { channel: 'offline', n: 1 },
      { channel: 'online', n: 3 },
    ]);
    expect(body.rows).toBe(2);
    expect(body.statistics).toHaveProperty('elapsed');
    expect(result).toMatchObject({ tables: ['events'], rows: 2 });
  });

  it('answers CSV with a header line', async () => {
    const result = await run(
      'SELECT order_id, revenue, \'a,"b"\nc\' AS note FROM orders ORDER BY order_id',
      'csv',
    );
    expect(result.contentType).toBe('text/csv; charset=utf-8');
    expect(result.body.toString()).toBe(
      '"order_id","revenue","note"\n"o1",20,"a,""b""\nc"\n"r1",12.5,"a,""b""\nc"\n',
    );
    expect(result.rows).toBe(2);
  });

  it('answers an Arrow IPC stream that apache-arrow reads', async () => {
    const result = await run('SELECT event_id, revenue FROM events ORDER BY position', 'arrow');
    expect(result.contentType).toBe('application/vnd.apache.arrow.stream');
    const table = tableFromIPC(result.body);
    expect(table.numRows).toBe(4);
    expect(table.schema.fields.map((field) => field.name)).toEqual(['event_id', 'revenue']);
    expect(result.rows).toBe(4);
  });

  it('runs a CTE, a join through identity, a view and a union', async () => {
    expect(
      await rows(
        'WITH online AS (SELECT * FROM events WHERE channel = {c:String}) SELECT count() AS n FROM online',
        { c: 'online' },
      ),
    ).toEqual([{ n: 3 }]);
    expect(
      await rows(`SELECT i.profile_id AS profile, count() AS n FROM events AS e
        INNER JOIN identity AS i ON i.identifier_hash = e.identifier_hash
        GROUP BY profile ORDER BY profile`),
    ).toEqual([
      { profile: 'prf_a', n: 3 },
      { profile: 'prf_b', n: 1 },
    ]);
    expect(
      await rows('SELECT profile_id, orders, revenue FROM profile_overview ORDER BY profile_id'),
    ).toEqual([
      { profile_id: 'prf_a', orders: 2, revenue: 32.5 },
      { profile_id: 'prf_b', orders: 0, revenue: 0 },
    ]);
    expect(
      await rows(`SELECT order_id FROM (
          SELECT order_id FROM events WHERE channel = 'online' AND order_id != ''
          UNION ALL SELECT order_id FROM orders WHERE channel = 'offline'
        ) ORDER BY order_id`),
    ).toEqual([{ order_id: 'o1' }, { order_id: 'r1' }]);
  });

  it('takes query parameters of every kind', async () => {
    const params = { channel: 'online', min: 15, names: ['Order Completed', 'x'], paid: true };
    expect(
      await rows(
        `SELECT order_id FROM events WHERE channel = {channel:String} AND revenue >= {min:Decimal(18, 2)}
           AND has({names:Array(String)}, event_name) AND (revenue > 0) = {paid:Bool}`,
        params,
      ),
    ).toEqual([{ order_id: 'o1' }]);
  });

  it('keeps a ; inside a string, a comment and the format() function', async () => {
    expect(
      await rows(
        "SELECT format('{}-{}', page_name, 'x;y') AS v FROM events WHERE page_name = 'a;b' -- one; row\n;",
      ),
    ).toEqual([{ v: 'a;b-x;y' }]);
  });

  it('answers a query fault with ClickHouse’s message and no stack trace', async () => {
    const unknown = await failure(run('SELECT nope FROM events'));
    expect(unknown.code).toBe(ErrorCodes.SQL_REFUSED);
    expect(unknown.message).toMatch(/Unknown expression identifier `nope`/);
    expect(unknown.message).not.toMatch(/Stack trace|version/);
    const missing = await failure(run('SELECT {x:UInt8} AS x'));
    expect(missing.message).toMatch(/^query parameter x has no value: give it in params/);
    const mismatch = await failure(run('SELECT {x:UInt8} AS x', 'json', { x: 'many' }));
    expect(mismatch.code).toBe(ErrorCodes.SQL_REFUSED);
  });
});

describe('analyst limits', () => {
  let limited: Warehouse;
  beforeAll(async () => {
    limited = await test.withLimits({
      maxExecutionSeconds: 1,
      maxResultRows: 200,
      maxMemoryBytes: 64 * 1024 ** 2,
    });
  });

  it('runs every query with them, and a SETTINGS clause cannot lift them', async () => {
    const result = await runAnalystQuery(limited, {
      query: "SELECT getSetting('max_execution_time') AS t, getSetting('max_result_rows') AS r",
      format: 'csv',
    });
    expect(result.stream.read().toString()).toBe('"t","r"\n1,200\n');
    const error = await failure(
      runAnalystQuery(limited, { query: 'SELECT 1 SETTINGS max_result_rows = 0', format: 'csv' }),
    );
    expect(error.code).toBe(ErrorCodes.SQL_REFUSED);
  });

  it('stops a query over the time limit with QUERY_TIMEOUT', async () => {
    const query = `SELECT count() FROM (SELECT arrayJoin(range(100000)) AS a) AS x
      CROSS JOIN (SELECT arrayJoin(range(100000)) AS b) AS y WHERE cityHash64(a, b) % 7 = 3`;
    const error = await failure(runAnalystQuery(limited, { query, format: 'json' }));
    expect(error.code).toBe(ErrorCodes.QUERY_TIMEOUT);
    expect(error.message).toMatch(/longer than the 1 s an analyst query may take/);
  });

  it('refuses a result over the row limit with QUERY_TOO_LARGE', async () => {
    const query = 'SELECT e.event_id, k FROM events AS e ARRAY JOIN range(100) AS k';
    const error = await failure(runAnalystQuery(limited, { query, format: 'arrow' }));
    expect(error.code).toBe(ErrorCodes.QUERY_TOO_LARGE);
    expect(error.message).toMatch(/larger than an analyst query may return \(200 rows, 512 MiB\)/);
  });

  it('holds a SELECT without FROM to the row limit too', async () => {
    for (const query of [
      'SELECT arrayJoin(range(1000)) AS n',
      'SELECT position FROM events UNION ALL SELECT arrayJoin(range(1000))',
    ]) {
      const error = await failure(runAnalystQuery(limited, { query, format: 'csv' }));
      expect(error.code, query).toBe(ErrorCodes.QUERY_TOO_LARGE);
    }
    const result = await runAnalystQuery(limited, {
      query: 'SELECT arrayJoin(range(3)) AS n ORDER BY n DESC',
      format: 'csv',
    });
    expect(result.stream.read().toString()).toBe('"n"\n2\n1\n0\n');
  });

  it('answers the next query with its own rows only, after one stopped half-way', async () => {
    const stopped = 'SELECT e.event_id, k FROM events AS e ARRAY JOIN range(100) AS k';
    await failure(runAnalystQuery(limited, { query: stopped, format: 'json' }));
    const next = await runAnalystQuery(limited, { query: 'SELECT 1 AS one', format: 'csv' });
    expect(next.stream.read().toString()).toBe('"one"\n1\n');
  });

  it('refuses a query over the memory limit with QUERY_TOO_LARGE', async () => {
    const query = 'SELECT length(groupArray(x)) AS n FROM (SELECT arrayJoin(range(20000000)) AS x)';
    const error = await failure(runAnalystQuery(limited, { query, format: 'json' }));
    expect(error.code).toBe(ErrorCodes.QUERY_TOO_LARGE);
    expect(error.message).toMatch(/more than the 64 MiB of memory/);
  });

  it('leaves the default handle unlimited by the other’s limits', async () => {
    expect(await rows("SELECT getSetting('max_result_rows') AS r")).toEqual([{ r: 1_000_000 }]);
  });
});

import { tableFromIPC } from 'apache-arrow';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import { installErrorHandler } from '../errors.js';
import { type SqlAuditEntry, sqlRoutes } from './sql.routes.js';
import { withoutLiterals } from './sql-lexer.js';
import {
  type AnalystWarehouse,
  type Footprint,
  openAnalystWarehouse,
} from './testing/analyst-warehouse.js';

const KEY = 'Bearer analyst-key';
const headers = { 'content-type': 'application/json', authorization: KEY };

describe(sqlRoutes.name, () => {
  let test: AnalystWarehouse;
  let app: FastifyInstance;
  let before: Footprint;
  let audited: SqlAuditEntry[] = [];
  let auditFails = false;

  beforeAll(async () => {
    test = await openAnalystWarehouse();
    // Small limits, so the 408 and the 413 come fast.
    const warehouse = await test.withLimits({ maxExecutionSeconds: 1, maxResultRows: 1000 });
    before = await test.footprint();
    app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    installErrorHandler(app);
    await app.register(sqlRoutes, {
      warehouse,
      authorize: (request) => {
        if (request.headers.authorization !== KEY)
          throw new TandemError(ErrorCodes.UNAUTHORIZED, 'no API key');
        return { keyId: 'key_1', name: 'BI team' };
      },
      audit: async (entry) => {
        if (auditFails) throw new Error('audit log unavailable');
        audited.push(entry);
      },
    });
  });
  afterAll(async () => {
    await app?.close();
    await test?.close();
  });
  beforeEach(() => {
    audited = [];
    auditFails = false;
  });

  const sql = (payload: object, authorization = KEY) =>
    app.inject({ method: 'POST', url: '/v1/sql', headers: { ...headers, authorization }, payload });

  it('answers JSON by default and audits the query with its key, tables and rows', async () => {
    const query =
      'SELECT channel, count() AS n FROM events WHERE channel = {c:String} GROUP BY channel';
    const response = await sql({ query, params: { c: 'online' } });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.json()).toMatchObject({ data: [{ channel: 'online', n: 3 }], rows: 1 });
    expect(audited).toEqual([
      { keyId: 'key_1', action: 'sql.query', query, tables: ['events'], rows: 1, outcome: 'ok' },
    ]);
  });

  it('audits the shape of a query, not the values typed into it', async () => {
    audited.length = 0;
    const response = await sql({
      query:
        "SELECT count() AS n FROM events WHERE properties LIKE '%ana@example.com%' AND revenue > 8613800 -- Ana",
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(audited[0]?.query).toBe(
      "SELECT count() AS n FROM events WHERE properties LIKE '…' AND revenue > ? /* … */",
    );
  });

  it('answers CSV and Arrow', async () => {
    const query = 'SELECT order_id FROM orders ORDER BY order_id';
    const csv = await sql({ query, format: 'csv' });
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.body).toBe('"order_id"\n"o1"\n"r1"\n');
    const arrow = await sql({ query, format: 'arrow' });
    expect(arrow.headers['content-type']).toBe('application/vnd.apache.arrow.stream');
    expect(tableFromIPC(arrow.rawPayload).getChild('order_id')?.toArray()).toEqual(['o1', 'r1']);
  });

  it.each([
    ['DROP TABLE events'],
    ['SELECT * FROM system.tables'],
    ["SELECT * FROM file('/etc/passwd', 'LineAsString')"],
    ["SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')"],
    ['SELECT 1 SETTINGS readonly = 0'],
    ['SELECT 1; DROP TABLE events'],
    ['SELECT 1 /* x */ ; DROP TABLE events'],
    ['SELECT 1 -- x\n; DROP TABLE events'],
    ['SELECT * FROM projector_checkpoints'],
    ['SELECT * FROM events WHERE'],
  ])('refuses %j with a 400, audits it, changes nothing and stays up', async (query) => {
    const response = await sql({ query });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json()).toMatchObject({
      success: false,
      error: { code: ErrorCodes.SQL_REFUSED, message: expect.any(String) },
    });
    expect(response.body).not.toMatch(/Stack trace|root:/);
    expect(audited).toMatchObject([
      { keyId: 'key_1', query: withoutLiterals(query), outcome: ErrorCodes.SQL_REFUSED },
    ]);
    expect(await test.footprint()).toEqual(before);
    expect((await sql({ query: 'SELECT count() AS n FROM events' })).json().data).toEqual([
      { n: 4 },
    ]);
  });

  it('names the refused table in the audit', async () => {
    await sql({ query: 'SELECT * FROM system.tables' });
    expect(audited[0]?.tables).toEqual(['system.tables']);
  });

  it('answers 408 past the time limit and 413 past the row limit', async () => {
    const slow = await sql({
      query: `SELECT count() FROM (SELECT arrayJoin(range(100000)) AS a) AS x
        CROSS JOIN (SELECT arrayJoin(range(100000)) AS b) AS y WHERE cityHash64(a, b) % 7 = 3`,
    });
    expect(slow.statusCode, slow.body).toBe(408);
    expect(slow.json().error.code).toBe(ErrorCodes.QUERY_TIMEOUT);
    const large = await sql({ query: 'SELECT k FROM events ARRAY JOIN range(1000) AS k' });
    expect(large.statusCode, large.body).toBe(413);
    expect(large.json().error.code).toBe(ErrorCodes.QUERY_TOO_LARGE);
    expect(audited.map((entry) => entry.outcome)).toEqual([
      ErrorCodes.QUERY_TIMEOUT,
      ErrorCodes.QUERY_TOO_LARGE,
    ]);
  });

  it('checks the key before the body, and audits neither', async () => {
    const response = await sql({ query: '' }, 'Bearer wrong');
    expect(response.statusCode).toBe(401);
    expect(audited).toEqual([]);
  });

  it.each([
    [{ query: '' }, 'query'],
    [{ query: 'SELECT 1', format: 'xml' }, 'format'],
    [{ query: 'SELECT 1', params: { 'bad name': 1 } }, 'params'],
    [{ query: 'SELECT 1', params: { x: { nested: 1 } } }, 'params.x'],
    [{ query: 'SELECT 1', parmas: {} }, '(body)'],
  ])('answers a bad body %j with a 400 naming the field', async (payload, path) => {
    const response = await sql(payload);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error.code).toBe(ErrorCodes.VALIDATION);
    expect(response.json().error.message).toContain(path);
  });

  it('answers nothing when the audit cannot be written', async () => {
    auditFails = true;
    const response = await sql({ query: 'SELECT count() AS n FROM events' });
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('"n"');
  });
});

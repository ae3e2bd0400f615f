import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, openTestApi, TEST_WRITE_KEY, type TestApi } from '../testing/api-app.js';
import { auditRoutes } from './audit.routes.js';

const EMAIL = 'audit.person@example.com';

let api: TestApi;
let officer: string;
let analyst: string;
let marketer: string;
beforeAll(async () => {
  api = await openTestApi({ sample: false });
  [officer, analyst, marketer] = await Promise.all([
    api.bearer('privacy_officer'),
    api.bearer('analyst'),
    api.bearer('marketer'),
  ]);
});
afterAll(() => api.close());

interface Entry {
  id: string;
  at: string;
  keyId: string;
  action: string;
  outcome: string;
  details: Record<string, unknown>;
}

const audit = (query: Record<string, string> = {}, authorization = officer) =>
  api.app.inject({
    method: 'GET',
    url: `/v1/audit?${new URLSearchParams(query)}`,
    headers: { authorization },
  });
const entries = async (query: Record<string, string> = {}): Promise<Entry[]> => {
  const response = await audit(query);
  expect(response.statusCode, response.body).toBe(200);
  return response.json().entries;
};
const call = (method: 'GET' | 'POST', url: string, authorization: string, payload?: object) =>
  api.app.inject({ method, url, headers: { authorization }, ...(payload ? { payload } : {}) });

describe(auditRoutes.name, () => {
  it('shows a SQL query and a key creation, newest first, with the key that acted', async () => {
    const since = new Date().toISOString();
    const query = await call('POST', '/v1/sql', analyst, {
      query: 'SELECT count() AS n FROM events',
    });
    expect(query.statusCode, query.body).toBe(200);
    const created = await call('POST', '/v1/keys', ADMIN, {
      name: 'BI team',
      grant: { kind: 'api', roles: ['analyst'] },
    });
    expect(created.statusCode, created.body).toBe(201);

    const [newest, older] = await entries({ from: since });
    expect(newest).toMatchObject({
      keyId: 'bootstrap-admin',
      action: 'key.create',
      outcome: 'ok',
      details: { created: created.json().key.keyId },
    });
    expect(older).toMatchObject({
      action: 'sql.query',
      outcome: 'ok',
      details: { query: 'SELECT count() AS n FROM events', tables: ['events'] },
    });
    expect(older?.keyId).toMatch(/^key_/);
    expect(Date.parse(newest?.at ?? '')).toBeGreaterThanOrEqual(Date.parse(older?.at ?? ''));
    expect(newest?.id).not.toBe(older?.id);
  });

  it('filters by action (exact or a prefix), key and time, and pages back with next', async () => {
    for (let i = 0; i < 5; i++)
      await api.audit.record({
        keyId: 'key_filtertest01',
        action: 'privacy.test',
        outcome: 'ok',
        details: { i },
      });
    await api.audit.record({ keyId: 'key_filtertest02', action: 'privacy.other', outcome: 'ok' });

    expect((await entries({ action: 'privacy.test' })).map((entry) => entry.details.i)).toEqual([
      4, 3, 2, 1, 0,
    ]);
    expect((await entries({ action: 'privacy.' })).map((entry) => entry.action)).toEqual([
      'privacy.other',
      ...Array(5).fill('privacy.test'),
    ]);
    expect((await entries({ keyId: 'key_filtertest02' })).map((entry) => entry.action)).toEqual([
      'privacy.other',
    ]);
    const sqlQueries = await entries({ action: 'sql.query' });
    expect(sqlQueries.length).toBeGreaterThan(0);
    expect(sqlQueries.every((entry) => entry.action === 'sql.query')).toBe(true);
    expect(await entries({ to: '2020-01-01T00:00:00Z' })).toEqual([]);
    expect(await entries({ from: new Date(Date.now() + 3_600_000).toISOString() })).toEqual([]);

    const seen: unknown[] = [];
    let next: string | null = null;
    do {
      const page = await audit({
        action: 'privacy.test',
        limit: '2',
        ...(next ? { cursor: next } : {}),
      });
      expect(page.statusCode, page.body).toBe(200);
      seen.push(...page.json().entries.map((entry: Entry) => entry.details.i));
      next = page.json().next;
    } while (next !== null && seen.length < 10);
    expect(seen).toEqual([4, 3, 2, 1, 0]);
  });

  it('keeps personal data out of every entry: a personal-data read, an export with contacts', async () => {
    const consent = await api.app.inject({
      method: 'POST',
      url: '/v1/consents',
      headers: { authorization: `Basic ${Buffer.from(`${TEST_WRITE_KEY}:`).toString('base64')}` },
      payload: { identifier: `email:${EMAIL}`, purposes: { marketing_email: true } },
    });
    expect(consent.statusCode, consent.body).toBe(200);
    await api.project();

    const read = await call(
      'GET',
      `/v1/profiles?identifier=email:${EMAIL}&include=personal_data`,
      officer,
    );
    expect(read.statusCode, read.body).toBe(200);
    expect(read.body).toContain(EMAIL);
    const segment = await call('POST', '/v1/segments', marketer, {
      name: 'email opt-ins',
      condition: { type: 'consent', purpose: 'marketing_email', granted: true },
    });
    expect(segment.statusCode, segment.body).toBe(201);
    const exported = await call(
      'GET',
      `/v1/segments/${segment.json().segmentId}/members?purpose=marketing_email&format=ndjson&contact=email`,
      marketer,
    );
    expect(exported.statusCode, exported.body).toBe(200);
    expect(exported.body).toContain(EMAIL);

    const trail = await audit({ limit: '1000' }, ADMIN);
    expect(trail.json().entries.map((entry: Entry) => entry.action)).toEqual(
      expect.arrayContaining(['profile.read_personal_data', 'segment.export']),
    );
    expect(trail.body.toLowerCase()).not.toContain(EMAIL);
    const hash = api.sample.hasher.hash('email', EMAIL).hash;
    expect(trail.body).not.toContain(hash);
  });

  it('is for admins and privacy officers: a marketer gets a 403 naming the roles', async () => {
    const denied = await audit({}, marketer);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe('TANDEM_ERR_FORBIDDEN');
    expect(denied.json().error.message).toContain('privacy_officer or admin');
    expect((await audit({}, ADMIN)).statusCode).toBe(200);
    expect((await audit({}, '')).statusCode).toBe(401);
  });

  it.each([
    [{ limit: '0' }, 'limit'],
    [{ limit: '1001' }, 'limit'],
    [{ limit: 'many' }, 'limit'],
    [{ from: 'yesterday' }, 'from'],
    [{ to: '2026-13-01T00:00:00Z' }, 'to'],
    [{ action: 'Privacy Requests' }, 'action'],
    [{ keyId: 'key 1' }, 'keyId'],
    [{ from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }, 'to'],
    [{ cursor: 'bm90LWEtY3Vyc29y' }, 'cursor'],
  ])('answers %j with a 400 naming %s', async (query, path) => {
    const response = await audit(query);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error.issues.map((issue: { path: string }) => issue.path)).toEqual([
      path,
    ]);
  });
});

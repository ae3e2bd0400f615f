import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_STREAM } from '../../privacy/audit.js';
import { KEYS_STREAM } from '../../schemas/api-keys.js';
import { ADMIN, openTestApi, type TestApi } from '../testing/api-app.js';
import { openKeyRegistry } from './key-registry.js';
import { keysRoutes } from './keys.routes.js';

/** Requests per key per minute in this file: more than the admin key needs, few enough to reach. */
const LIMIT = 40;
let api: TestApi;
beforeAll(async () => {
  api = await openTestApi({ sample: false, requestsPerMinute: LIMIT });
});
afterAll(() => api?.close());

const createKey = (body: object, authorization = ADMIN) =>
  api.app.inject({ method: 'POST', url: '/v1/keys', headers: { authorization }, payload: body });
const listKeys = (authorization = ADMIN) =>
  api.app.inject({ method: 'GET', url: '/v1/keys', headers: { authorization } });

describe(keysRoutes.name, () => {
  it('makes a key shown once, stored only as a digest, that then opens the API', async () => {
    const created = await createKey({
      name: 'BI team',
      grant: { kind: 'api', roles: ['analyst'] },
    });
    expect(created.statusCode).toBe(201);
    const { key, token } = created.json();
    expect(token).toMatch(/^tdm_key_[0-9a-z]{12}_[A-Za-z0-9_-]{43}$/);
    expect(key).toMatchObject({ name: 'BI team', createdBy: 'bootstrap-admin' });
    const listed = await listKeys();
    expect(listed.json().keys.map((k: { keyId: string }) => k.keyId)).toContain(key.keyId);
    expect(listed.body).not.toContain(token.slice(-43));
    let stored = '';
    for await (const event of api.sample.eventStore.readStream(KEYS_STREAM))
      stored += JSON.stringify(event.data);
    expect(stored).not.toContain(token.slice(-43));
    // The analyst key reaches an analyst route (404: the profile does not exist) but not key management.
    const asAnalyst = `Bearer ${token}`;
    expect(
      (
        await api.app.inject({
          method: 'GET',
          url: '/v1/profiles/prf_none',
          headers: { authorization: asAnalyst },
        })
      ).statusCode,
    ).toBe(404);
    const forbidden = await listKeys(asAnalyst);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error).toMatchObject({ code: 'TANDEM_ERR_FORBIDDEN' });
    expect(forbidden.json().error.message).toContain('admin');
  });

  it('refuses a token whose secret is altered, keeping the id', async () => {
    const { token } = (
      await createKey({ name: 'x', grant: { kind: 'api', roles: ['marketer'] } })
    ).json();
    const altered = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    expect(api.keys.authenticate(token)).toBeDefined();
    expect(api.keys.authenticate(altered)).toBeUndefined();
  });

  it('revokes a key at once here, and in another process after a refresh', async () => {
    const { key, token } = (
      await createKey({ name: 'temp', grant: { kind: 'api', roles: ['marketer'] } })
    ).json();
    const elsewhere = await openKeyRegistry({ eventStore: api.sample.eventStore });
    expect(elsewhere.authenticate(token)?.keyId).toBe(key.keyId);
    const revoked = await api.app.inject({
      method: 'DELETE',
      url: `/v1/keys/${key.keyId}`,
      headers: { authorization: ADMIN },
    });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().key.revokedBy).toBe('bootstrap-admin');
    expect(api.keys.authenticate(token)).toBeUndefined();
    expect(elsewhere.authenticate(token)).toBeDefined();
    await elsewhere.refresh();
    expect(elsewhere.authenticate(token)).toBeUndefined();
    const again = await api.app.inject({
      method: 'DELETE',
      url: `/v1/keys/${key.keyId}`,
      headers: { authorization: ADMIN },
    });
    expect(again.statusCode).toBe(200);
    const unknown = await api.app.inject({
      method: 'DELETE',
      url: '/v1/keys/key_000000000000',
      headers: { authorization: ADMIN },
    });
    expect(unknown.statusCode).toBe(404);
  });

  it('makes write keys that the tracking API takes', async () => {
    const { token } = (
      await createKey({ name: 'Web shop', grant: { kind: 'write', sourceId: 'web-shop' } })
    ).json();
    expect(token).toMatch(/^wk_key_/);
    const tracked = await api.app.inject({
      method: 'POST',
      url: '/v1/track',
      headers: { authorization: `Basic ${Buffer.from(`${token}:`).toString('base64')}` },
      payload: { userId: 'u-1', event: 'Product Viewed', messageId: 'm-1' },
    });
    expect(tracked.statusCode).toBe(200);
    // A write key is not an API key.
    expect((await listKeys(`Bearer ${token}`)).statusCode).toBe(401);
  });

  it('answers 400 with the path of each bad field, and records nothing', async () => {
    const before = (await listKeys()).json().keys.length;
    const bad = await createKey({ name: '', grant: { kind: 'api', roles: ['wizard'] } });
    expect(bad.statusCode).toBe(400);
    const paths = bad.json().error.issues.map((issue: { path: string }) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'grant.roles.0']));
    expect((await listKeys()).json().keys.length).toBe(before);
  });

  it('audits every key change with the key that made it', async () => {
    const entries = [];
    for await (const event of api.sample.eventStore.readStream(AUDIT_STREAM))
      entries.push(event.data);
    expect(entries.map((entry) => entry.action)).toEqual(
      expect.arrayContaining(['key.create', 'key.revoke']),
    );
    expect(entries.every((entry) => entry.keyId === 'bootstrap-admin')).toBe(true);
  });

  it('limits each key on its own: one request over the limit in a minute is a 429, another key is untouched', async () => {
    const first = await api.bearer('marketer');
    const second = await api.bearer('marketer');
    const call = (authorization: string) =>
      api.app.inject({ method: 'GET', url: '/v1/profiles/prf_none', headers: { authorization } });
    for (let i = 0; i < LIMIT; i++) expect((await call(first)).statusCode).toBe(404);
    const limited = await call(first);
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('TANDEM_ERR_RATE_LIMITED');
    expect(limited.headers['retry-after']).toBeDefined();
    expect((await call(second)).statusCode).toBe(404);
  });

  it('lets analysts alone run SQL, each query audited with the key that ran it', async () => {
    const analyst = await api.bearer('analyst');
    const marketer = await api.bearer('marketer');
    const query = (authorization: string) =>
      api.app.inject({
        method: 'POST',
        url: '/v1/sql',
        headers: { authorization },
        payload: { query: 'SELECT count() AS n FROM events' },
      });
    const answered = await query(analyst);
    expect(answered.statusCode, answered.body).toBe(200);
    expect(answered.json().data).toEqual([{ n: 0 }]);
    const refused = await query(marketer);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.message).toContain('analyst');
    const [entry] = await api.audit.recent(1);
    expect(entry).toMatchObject({
      action: 'sql.query',
      outcome: 'ok',
      details: { query: 'SELECT count() AS n FROM events', tables: ['events'] },
    });
    expect(entry?.keyId).toMatch(/^key_/);
  });
});

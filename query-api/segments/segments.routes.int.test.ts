import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_STREAM } from '../../privacy/audit.js';
import { selectRows } from '../../warehouse/select.js';
import { openTestApi, type TestApi } from '../testing/api-app.js';
import { segmentsRoutes } from './segments.routes.js';

let api: TestApi;
let marketer: string;
let analyst: string;
beforeAll(async () => {
  api = await openTestApi();
  [marketer, analyst] = await Promise.all([api.bearer('marketer'), api.bearer('analyst')]);
});
afterAll(() => api?.close());

const post = (url: string, payload: object, authorization = marketer) =>
  api.app.inject({ method: 'POST', url, payload, headers: { authorization } });
const get = (url: string, authorization = marketer) =>
  api.app.inject({ method: 'GET', url, headers: { authorization } });

const viewedOnline = { type: 'event', filter: { eventName: 'Product Viewed', channel: 'online' } };
const boughtInStore = {
  type: 'event',
  filter: { channel: 'offline', eventName: 'Order Completed' },
};

async function activeProfiles(): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    api.warehouse.client,
    "SELECT count() AS n FROM tandem.profiles WHERE status = 'active'",
  );
  return Number(row?.n);
}

async function save(body: object) {
  const response = await post('/v1/segments', body);
  expect(response.statusCode, response.body).toBe(201);
  return response.json();
}

describe(segmentsRoutes.name, () => {
  it('previews a condition: size, channel split, a sample of members, the time taken', async () => {
    const response = await post(
      '/v1/segments/preview',
      { condition: viewedOnline, sampleSize: 5 },
      analyst,
    );
    expect(response.statusCode, response.body).toBe(200);
    const preview = response.json();
    expect(preview.size).toBeGreaterThan(0);
    expect(preview.onlineOnly + preview.offlineOnly + preview.both + preview.neither).toBe(
      preview.size,
    );
    expect(preview.offlineOnly).toBe(0);
    expect(preview.sample).toHaveLength(Math.min(5, preview.size));
    expect(preview.tookMs).toBeGreaterThanOrEqual(0);
    const sizeOnly = await post(
      '/v1/segments/preview',
      { condition: viewedOnline, sampleSize: 0 },
      analyst,
    );
    expect(sizeOnly.statusCode, sizeOnly.body).toBe(200);
    expect(sizeOnly.json()).toMatchObject({ size: preview.size, sample: [] });
  });

  it('takes a did-not condition on its own: everyone else', async () => {
    const did = (await post('/v1/segments/preview', { condition: viewedOnline })).json().size;
    const didNot = await post('/v1/segments/preview', {
      condition: { ...viewedOnline, count: { op: 'exactly', n: 0 } },
    });
    expect(didNot.statusCode).toBe(200);
    expect(didNot.json().size).toBe((await activeProfiles()) - did);
  });

  it('answers as of a past time: nothing had happened before the data began', async () => {
    const response = await post('/v1/segments/preview', {
      condition: viewedOnline,
      asOf: '2020-01-01T00:00:00Z',
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().size).toBe(0);
    const future = await post('/v1/segments/preview', {
      condition: viewedOnline,
      asOf: '2999-01-01T00:00:00Z',
    });
    expect(future.statusCode).toBe(400);
  });

  it('refuses a bad condition with the path of each bad field, and a wrong role with 403', async () => {
    const bad = await post('/v1/segments/preview', {
      condition: {
        type: 'and',
        conditions: [{ type: 'trait', trait: 'city', op: 'like', value: 1 }],
      },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.issues.map((issue: { path: string }) => issue.path)).toContain(
      'condition.conditions.0.op',
    );
    const forbidden = await post('/v1/segments', { name: 'x', condition: viewedOnline }, analyst);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.message).toContain('marketer');
  });

  it('saves, versions, lists and archives segments, all as events', async () => {
    const saved = await save({ name: 'Browsers', condition: viewedOnline });
    expect(saved).toMatchObject({ version: 1, refreshIntervalMinutes: null });
    expect(saved.definition.name).toBe('Browsers');
    const updated = await api.app.inject({
      method: 'PUT',
      url: `/v1/segments/${saved.segmentId}`,
      headers: { authorization: marketer },
      payload: {
        name: 'Browsers (30 days)',
        condition: { ...viewedOnline, window: { lastDays: 30 } },
        refreshIntervalMinutes: 60,
      },
    });
    expect(updated.statusCode, updated.body).toBe(200);
    expect(updated.json()).toMatchObject({ version: 2, refreshIntervalMinutes: 60 });
    expect(updated.json().versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
    expect((await get(`/v1/segments/${saved.segmentId}`)).json().definition.name).toBe(
      'Browsers (30 days)',
    );
    const archived = await api.app.inject({
      method: 'DELETE',
      url: `/v1/segments/${saved.segmentId}`,
      headers: { authorization: marketer },
    });
    expect(archived.json().archivedAt).toBeDefined();
    const listed = (await get('/v1/segments'))
      .json()
      .segments.map((s: { segmentId: string }) => s.segmentId);
    expect(listed).not.toContain(saved.segmentId);
    const all = (await get('/v1/segments?includeArchived=true')).json().segments;
    expect(all.map((s: { segmentId: string }) => s.segmentId)).toContain(saved.segmentId);
    expect((await post(`/v1/segments/${saved.segmentId}/refresh`, {})).statusCode).toBe(400);
    expect((await get('/v1/segments/seg_000000000000')).statusCode).toBe(404);
  });

  it('uses saved segments inside others, and refuses unknown ones', async () => {
    const browsers = await save({ name: 'Browsers', condition: viewedOnline });
    const showroomers = await post('/v1/segments/preview', {
      condition: {
        type: 'and',
        conditions: [{ type: 'segment', id: browsers.segmentId }, boughtInStore],
      },
    });
    expect(showroomers.statusCode, showroomers.body).toBe(200);
    // The sample's members link their card in the app, so some profiles browse online and buy in store.
    const { size, both } = showroomers.json();
    expect(size).toBeGreaterThan(0);
    expect(both).toBe(size);
    const unknown = await post('/v1/segments', {
      name: 'x',
      condition: { type: 'segment', id: 'seg_000000000000' },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toContain('seg_000000000000');
  });

  it('records who entered and who left at each refresh', async () => {
    const segment = await save({ name: 'Viewers', condition: viewedOnline });
    const first = await post(`/v1/segments/${segment.segmentId}/refresh`, {});
    expect(first.statusCode, first.body).toBe(200);
    const preview = (await post('/v1/segments/preview', { condition: viewedOnline })).json();
    expect(first.json()).toMatchObject({
      refresh: 1,
      size: preview.size,
      entered: preview.size,
      left: 0,
    });
    const narrower = {
      type: 'and',
      conditions: [viewedOnline, { type: 'consent', purpose: 'marketing_email', granted: true }],
    };
    await api.app.inject({
      method: 'PUT',
      url: `/v1/segments/${segment.segmentId}`,
      headers: { authorization: marketer },
      payload: { name: 'Viewers who take email', condition: narrower },
    });
    const second = (await post(`/v1/segments/${segment.segmentId}/refresh`, {})).json();
    const narrowSize = (await post('/v1/segments/preview', { condition: narrower })).json().size;
    expect(second).toMatchObject({
      refresh: 2,
      version: 2,
      size: narrowSize,
      entered: 0,
      left: preview.size - narrowSize,
    });
    const history = await selectRows<{ change: string; refresh: number; n: number }>(
      api.warehouse.client,
      `SELECT change, refresh, count() AS n FROM tandem.segment_membership_history
       WHERE segment_id = {id:String} GROUP BY change, refresh ORDER BY refresh, change`,
      { id: segment.segmentId },
    );
    expect(history.map((row) => [row.change, Number(row.refresh), Number(row.n)])).toEqual([
      ['entered', 1, preview.size],
      ['left', 2, preview.size - narrowSize],
    ]);
  });

  it('exports only the members who consented to the purpose, in CSV, NDJSON and Arrow', async () => {
    const segment = await save({ name: 'All viewers', condition: viewedOnline });
    const url = `/v1/segments/${segment.segmentId}/members?purpose=marketing_email`;
    const ndjson = await get(`${url}&format=ndjson`);
    expect(ndjson.statusCode).toBe(200);
    expect(ndjson.headers['content-type']).toContain('ndjson');
    const members = ndjson.body
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line).profile_id as string);
    const consenting = await selectRows<{ profile_id: string }>(
      api.warehouse.client,
      `SELECT profile_id FROM tandem.consents WHERE purpose = 'marketing_email' AND granted`,
    );
    const allowed = new Set(consenting.map((row) => row.profile_id));
    expect(members.length).toBeGreaterThan(0);
    expect(members.every((id) => allowed.has(id))).toBe(true);
    const size = (await post('/v1/segments/preview', { condition: viewedOnline })).json().size;
    expect(members.length).toBeLessThan(size);

    const csv = await get(`${url}&format=csv`);
    expect(csv.body.split('\n')[0]).toBe('"profile_id","consented_at"');
    expect(csv.body.trimEnd().split('\n')).toHaveLength(members.length + 1);
    const arrow = await get(`${url}&format=arrow`);
    const table = tableFromIPC(arrow.rawPayload);
    expect(table.numRows).toBe(members.length);
    expect(table.getChild('profile_id')?.toArray().sort()).toEqual([...members].sort());
  });

  it('unseals the contact field for consenting members alone, and audits the export', async () => {
    const segment = await save({ name: 'Email me', condition: viewedOnline });
    const response = await get(
      `/v1/segments/${segment.segmentId}/members?purpose=marketing_email&format=ndjson&contact=email`,
    );
    expect(response.statusCode).toBe(200);
    const rows = response.body
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(rows.some((row) => typeof row.email === 'string' && row.email.includes('@'))).toBe(true);
    const entries = [];
    for await (const event of api.sample.eventStore.readStream(AUDIT_STREAM, {
      direction: 'backwards',
      maxCount: 5,
    }))
      entries.push(event.data);
    const exported = entries.find((entry) => entry.action === 'segment.export');
    expect(exported).toMatchObject({
      details: {
        segmentId: segment.segmentId,
        purpose: 'marketing_email',
        contact: 'email',
      },
    });
    expect(JSON.stringify(entries)).not.toContain('@');
    const noPurpose = await get(`/v1/segments/${segment.segmentId}/members`);
    expect(noPurpose.statusCode).toBe(400);
    expect(noPurpose.json().error.issues[0].path).toBe('purpose');
    const before = await get(
      `/v1/segments/${segment.segmentId}/members?purpose=marketing_email&asOf=2020-01-01T00:00:00Z`,
    );
    expect(before.statusCode).toBe(400);
    expect(before.json().error.message).toContain('did not exist');
  });
});

/**
 * The proof that erasure erases (invariant 5): Ana, seen on the web, in the
 * app and at two stores, with consents, a segment membership and a
 * recommendation model trained on her data, is erased through the API; then
 * no API, SQL query, export or replay returns her, and a byte search of the
 * data directory finds neither her identifiers nor their hashes (the
 * suppression list aside, which keeps keyed hashes by design).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openResolver } from '../identity/resolver.js';
import { rebuildProjections } from '../projections/rebuild.js';
import { DEFAULT_IDENTITY_RULES } from '../schemas/identity.js';
import { RECOMMENDATION_TABLES } from '../warehouse/recommendation-tables.js';
import { selectRows } from '../warehouse/select.js';
import { PROJECTED_TABLES, SEGMENT_TABLES } from '../warehouse/tables.js';
import {
  ANA,
  anaNeedles,
  anaTexts,
  BOB,
  call,
  fileAndWait,
  filesContaining,
  ingest,
  ingestScenario,
  keyWithRole,
  personInWarehouse,
  removeDataDir,
  type ScenarioPlatform,
  startScenarioPlatform,
} from './testing/erasure-scenario.js';

let test: ScenarioPlatform;
let officer: string;
let marketer: string;
let analyst: string;
let ana: Awaited<ReturnType<typeof personInWarehouse>>;
let bob: Awaited<ReturnType<typeof personInWarehouse>>;
let segmentId: string;
let erasure: Record<string, unknown> & { report: Record<string, number> };

const profileBy = (identifier: string) =>
  call(test, 'GET', `/v1/profiles?identifier=${encodeURIComponent(identifier)}`, test.admin);

beforeAll(async () => {
  test = await startScenarioPlatform();
  await ingestScenario(test);
  await test.settle();
  [officer, marketer, analyst] = await Promise.all([
    keyWithRole(test, 'privacy_officer'),
    keyWithRole(test, 'marketer'),
    keyWithRole(test, 'analyst'),
  ]);
  ana = await personInWarehouse(test, ANA.email);
  bob = await personInWarehouse(test, BOB.email);
  const segment = await call(test, 'POST', '/v1/segments', marketer, {
    name: 'Bought in store',
    condition: { type: 'event', filter: { channel: 'offline', eventName: 'Order Completed' } },
  });
  expect(segment.statusCode, segment.body).toBe(201);
  segmentId = segment.json().segmentId;
  const refreshed = await call(test, 'POST', `/v1/segments/${segmentId}/refresh`, marketer);
  expect(refreshed.statusCode, refreshed.body).toBe(200);
  const model = await call(test, 'POST', '/v1/recommendations/refresh', marketer);
  expect(model.statusCode, model.body).toBe(200);
}, 120_000);

afterAll(async () => {
  await test?.stop();
  if (test) await removeDataDir(test.dataDir);
});

describe('erasure', () => {
  it('starts from a person held everywhere: profile, events, segment, model, consent', async () => {
    expect(ana.identifiers.map((identifier) => identifier.type).sort()).toEqual([
      'anonymous_id',
      'anonymous_id',
      'email',
      'member_id',
      'payment_token',
      'payment_token',
      'phone',
      'user_id',
    ]);
    const held = await rowsMentioningAna();
    for (const table of [
      'events',
      'orders',
      'identity',
      'profiles',
      'consents',
      'consent_history',
      'segment_membership_history',
      'reco_model_profiles',
    ])
      expect(held[table], table).toBeGreaterThan(0);
    expect((await anaBytes()).length).toBeGreaterThan(0);
  });

  it('completes through every state, with a report of counts and no personal data', async () => {
    const started = Date.now();
    erasure = await fileAndWait(test, officer, {
      type: 'erasure',
      identifier: `email:${ANA.email}`,
    });
    expect(erasure.state, JSON.stringify(erasure)).toBe('completed');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(Object.keys(erasure.times as object)).toEqual([
      'received',
      'running',
      'verifying',
      'completed',
    ]);
    expect(erasure.report).toMatchObject({ profiles: 1, identifiers: 8, suppressed: 8 });
    // Keys exist for the streams that hold sealed fields: the two devices' and the member card's.
    expect(erasure.report.data_keys).toBe(3);
    expect(erasure.report.log_events).toBeGreaterThan(10);
    expect(erasure.report['clickhouse.events']).toBeGreaterThan(0);
    const text = JSON.stringify(erasure);
    for (const needle of anaTexts(ana.identifiers)) expect(text).not.toContain(needle);
  });

  it('leaves no API answering about her, and Bob untouched', async () => {
    for (const identifier of [
      `email:${ANA.email}`,
      `phone:${ANA.phone}`,
      `member_id:${ANA.memberId}`,
      `user_id:${ANA.userId}`,
      `anonymous_id:${ANA.webDevice}`,
    ])
      expect((await profileBy(identifier)).statusCode, identifier).toBe(404);
    expect((await call(test, 'GET', `/v1/profiles/${ana.profileId}`, test.admin)).statusCode).toBe(
      404,
    );
    expect(
      (await call(test, 'GET', `/v1/profiles/${ana.profileId}/recommendations`, marketer))
        .statusCode,
    ).toBe(404);
    expect((await profileBy(`email:${BOB.email}`)).statusCode).toBe(200);
    const members = await call(
      test,
      'GET',
      `/v1/segments/${segmentId}/members?purpose=marketing_email&format=ndjson`,
      marketer,
    );
    expect(members.statusCode, members.body).toBe(200);
    expect(members.body).not.toContain(ana.profileId);
  });

  it('leaves no row in any table, as the analysts see them', async () => {
    expect(Object.values(await rowsMentioningAna()).every((rows) => rows === 0)).toBe(true);
    const sql = await call(test, 'POST', '/v1/sql', analyst, {
      query: 'SELECT count() AS n FROM events WHERE has(identifiers, {id:String})',
      params: { id: `email:${ana.identifiers.find((i) => i.type === 'email')?.hash}` },
    });
    expect(sql.statusCode, sql.body).toBe(200);
    expect(sql.json().data).toEqual([{ n: 0 }]);
  });

  it('exports nothing of her to a later access request', async () => {
    const access = await fileAndWait(test, officer, {
      type: 'access',
      identifier: `email:${ANA.email}`,
    });
    expect(access.state).toBe('completed');
    expect(access.report).toMatchObject({ profiles: 0, log_events: 0, events: 0 });
  });

  it('drops what she sends afterwards at ingest', async () => {
    await ingest(test, '/v1/track', {
      event: 'Product Viewed',
      anonymousId: ANA.webDevice,
      messageId: 'ana-after-erasure',
      properties: { product_id: 'sku-shoe-1' },
    });
    await test.settle();
    expect((await profileBy(`anonymous_id:${ANA.webDevice}`)).statusCode).toBe(404);
    const metrics = await test.request('GET', '/metrics');
    expect(metrics.body).toMatch(/tandem_ingest_events_suppressed_total\{source="web"\} 1/);
  });

  it('leaves neither her identifiers nor their hashes in any file of the data directory', async () => {
    // Before any rebuild (which would drop whole tables): ClickHouse removes the parts a mutation
    // replaced in the background; LMDB files are clean at once.
    let hits = await anaBytes();
    expect(hits.filter((hit) => !hit.file.startsWith('clickhouse'))).toEqual([]);
    const deadline = Date.now() + 120_000;
    while (hits.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      hits = await anaBytes();
    }
    expect(hits).toEqual([]);
  }, 150_000);

  it('is not brought back by a replay of identity or a rebuild of the projections', async () => {
    const replayed = await openResolver({
      eventStore: test.runtime.eventStore,
      rules: DEFAULT_IDENTITY_RULES,
      appendDecisions: false,
    });
    await replayed.catchUp();
    for (const { hash } of ana.identifiers) expect(replayed.graph.profileOf(hash)).toBeUndefined();
    for (const { hash } of bob.identifiers) expect(replayed.graph.profileOf(hash)).toBeDefined();
    const warehouse = test.platform.warehouse;
    if (!warehouse) throw new Error('no warehouse');
    await rebuildProjections({
      eventStore: test.runtime.eventStore,
      warehouse,
      priority: DEFAULT_IDENTITY_RULES.priority,
    });
    expect(Object.values(await rowsMentioningAna()).every((rows) => rows === 0)).toBe(true);
  });
});

describe('privacy requests', () => {
  const batchAs = (anonymousId: string, messageId: string) =>
    ingest(test, '/v1/track', {
      event: 'Product Viewed',
      anonymousId,
      messageId,
      properties: { product_id: 'x' },
    });
  const suppressedCount = async () => {
    const metrics = await test.request('GET', '/metrics');
    const match = /tandem_ingest_events_suppressed_total\{source="web"\} (\d+)/.exec(metrics.body);
    return Number(match?.[1] ?? 0);
  };

  it('suppress_only drops what Bob sends from then on and keeps what is held; unsuppress lets it in again', async () => {
    const suppress = await fileAndWait(test, officer, {
      type: 'suppress_only',
      identifier: `email:${BOB.email}`,
    });
    expect(suppress.state).toBe('completed');
    expect(suppress.report.suppressed).toBe(bob.identifiers.length);
    const before = await suppressedCount();
    expect((await batchAs(BOB.webDevice, 'bob-while-suppressed')).statusCode).toBe(200);
    expect(await suppressedCount()).toBe(before + 1);
    expect((await profileBy(`email:${BOB.email}`)).statusCode).toBe(200);

    const unsuppress = await fileAndWait(test, officer, {
      type: 'unsuppress',
      identifier: `email:${BOB.email}`,
    });
    expect(unsuppress.state).toBe('completed');
    expect((await batchAs(BOB.webDevice, 'bob-after-unsuppress')).statusCode).toBe(200);
    expect(await suppressedCount()).toBe(before + 1);
  });

  it("downloads Bob's access export as a zip, and audits the download", async () => {
    const access = await fileAndWait(test, officer, {
      type: 'access',
      identifier: `member_id:${BOB.memberId}`,
    });
    expect(access.state).toBe('completed');
    expect(access.report.profiles).toBe(1);
    expect(access.report.events).toBeGreaterThan(0);
    const zip = await call(test, 'GET', `/v1/privacy/requests/${access.id}/export`, officer);
    expect(zip.statusCode).toBe(200);
    expect(zip.rawPayload.subarray(0, 2).toString()).toBe('PK');
    expect(zip.rawPayload.includes(Buffer.from('README.txt'))).toBe(true);
    const audit = await call(test, 'GET', '/v1/audit?action=privacy.export_downloaded', officer);
    expect(audit.json().entries[0]).toMatchObject({
      action: 'privacy.export_downloaded',
      details: { requestId: access.id },
    });
  });

  it('refuses bad requests with the path of the bad field, and stores nothing', async () => {
    const listed = async () =>
      (await call(test, 'GET', '/v1/privacy/requests?limit=500', officer)).json().requests.length;
    const count = await listed();
    for (const [body, path] of [
      [{ type: 'erase', identifier: `email:${BOB.email}` }, 'type'],
      [{ type: 'erasure', identifier: 'email:not-an-email' }, 'identifier'],
      [{ type: 'erasure', identifier: 'nothing' }, 'identifier'],
      [{ type: 'erasure', identifier: 'profile:nobody' }, 'identifier'],
      [{ type: 'access' }, 'identifier'],
    ] as const) {
      const response = await call(test, 'POST', '/v1/privacy/requests', officer, body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(
        response.json().error.issues.map((issue: { path: string }) => issue.path),
        JSON.stringify(body),
      ).toContain(path);
    }
    expect(await listed()).toBe(count);
  });

  it('is for privacy officers: a marketer gets 403 naming the role', async () => {
    const response = await call(test, 'POST', '/v1/privacy/requests', marketer, {
      type: 'access',
      identifier: `email:${BOB.email}`,
    });
    expect(response.statusCode).toBe(403);
    expect(response.json().error.message).toContain('privacy_officer');
  });

  it('has no export for an erasure (409), and 404 for an unknown request', async () => {
    const requests = (await call(test, 'GET', '/v1/privacy/requests?limit=500', officer)).json()
      .requests as { id: string; type: string }[];
    const erasureRequest = requests.find((request) => request.type === 'erasure');
    const exported = await call(
      test,
      'GET',
      `/v1/privacy/requests/${erasureRequest?.id}/export`,
      officer,
    );
    expect(exported.statusCode).toBe(409);
    expect(
      (await call(test, 'GET', '/v1/privacy/requests/prq_doesnotexist00', officer)).statusCode,
    ).toBe(404);
  });

  it('lists requests newest first, with the audit trail holding each one without personal data', async () => {
    const { requests } = (await call(test, 'GET', '/v1/privacy/requests', officer)).json();
    expect(requests.map((request: { type: string }) => request.type).slice(0, 3)).toEqual([
      'access',
      'unsuppress',
      'suppress_only',
    ]);
    const audit = await call(test, 'GET', '/v1/audit?action=privacy.&limit=1000', officer);
    expect(audit.statusCode, audit.body).toBe(200);
    const actions = audit.json().entries.map((entry: { action: string }) => entry.action);
    expect(actions).toEqual(
      expect.arrayContaining(['privacy.request_filed', 'privacy.erasure', 'privacy.suppress_only']),
    );
    for (const text of anaTexts(ana.identifiers)) expect(audit.body).not.toContain(text);
  });
});

/** Rows of every table that name Ana's profile or one of her identifiers, read as text. */
async function rowsMentioningAna(): Promise<Record<string, number>> {
  const warehouse = test.platform.warehouse;
  if (!warehouse) throw new Error('no warehouse');
  const needles = [ana.profileId, ...ana.identifiers.map((identifier) => identifier.hash)];
  const counts: Record<string, number> = {};
  for (const spec of [...PROJECTED_TABLES, ...SEGMENT_TABLES, ...RECOMMENDATION_TABLES]) {
    const [row] = await selectRows<{ n: number }>(
      warehouse.client,
      `SELECT count() AS n FROM ${warehouse.table(spec.name)}
       WHERE multiSearchAny(toString(tuple(*)), {needles:Array(String)}) SETTINGS final = 0`,
      { needles },
    );
    counts[spec.name] = row?.n ?? 0;
  }
  return counts;
}

/** Files of the data directory holding any of Ana's identifiers or hashes (the suppression list aside). */
function anaBytes() {
  return filesContaining(test.dataDir, anaNeedles(ana.identifiers), (file) =>
    file.startsWith('suppression'),
  );
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../eventstore/testing/helpers.js';
import { subjectStream } from '../../privacy/personal-data.js';
import {
  ADMIN,
  openTestApi,
  TEST_WRITE_KEY,
  type TestApi,
} from '../../query-api/testing/api-app.js';
import { CONSENT_STATED } from '../../schemas/consent.js';
import { Envelope } from '../../schemas/envelope.js';
import { selectRows } from '../../warehouse/select.js';
import { BASIC_AUTH, openTestIngestApp } from '../testing/ingest-app.js';
import { consentsRoutes } from './consents.routes.js';

const BASIC = `Basic ${Buffer.from(`${TEST_WRITE_KEY}:`).toString('base64')}`;

let api: TestApi;
beforeAll(async () => {
  api = await openTestApi({ sample: false });
});
afterAll(() => api.close());

const post = (payload: unknown, authorization = BASIC) =>
  api.app.inject({
    method: 'POST',
    url: '/v1/consents',
    headers: {
      'content-type': 'application/json',
      ...(authorization ? { authorization } : {}),
    },
    payload: JSON.stringify(payload),
  });

/** The stored envelopes of an identifier's stream (`email:ana@example.com`). */
const storedFor = async (type: string, value: string) =>
  (
    await collect(
      api.sample.eventStore.readStream(subjectStream(api.sample.hasher.hash(type, value))),
    ).catch(() => [])
  ).map((event) => Envelope.parse(event.data));

const logSize = async () => (await collect(api.sample.eventStore.readAll())).length;

const profileOf = async (identifier: string) => {
  const response = await api.app.inject({
    method: 'GET',
    url: `/v1/profiles?identifier=${encodeURIComponent(identifier)}`,
    headers: { authorization: ADMIN },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
};

const historyOf = async (profileId: string, purpose: string) =>
  selectRows<{ granted: boolean; source: string; stated_at: string }>(
    api.warehouse.client,
    `SELECT granted, source, stated_at FROM ${api.warehouse.table('consent_history')} FINAL
     WHERE profile_id = {profile:String} AND purpose = {purpose:String} ORDER BY seq`,
    { profile: profileId, purpose },
  );

describe(consentsRoutes.name, () => {
  it('records a grant, then a withdrawal, on the profile; the history keeps both', async () => {
    const granted = await post({
      identifier: 'email:Ana.Consent@Example.com',
      purposes: { marketing_email: true, personalization: true },
      occurredAt: '2026-03-01T10:00:00+08:00',
      statementId: 'ot-1',
      source: 'onetrust',
    });
    expect(granted.statusCode, granted.body).toBe(200);
    expect(granted.json()).toEqual({ success: true, accepted: 1, suppressed: 0 });

    const [stored] = await storedFor('email', 'ana.consent@example.com');
    expect(stored).toMatchObject({
      type: CONSENT_STATED,
      source: { kind: 'cmp', id: 'test-source' },
      occurredAt: '2026-03-01T02:00:00.000Z',
      data: {
        consent: { purposes: { marketing_email: true, personalization: true }, source: 'onetrust' },
      },
    });
    expect(stored?.pii?.keyId).toBeDefined();
    // The identifier and the platform's id travel sealed only.
    expect(JSON.stringify(stored).toLowerCase()).not.toContain('ana.consent@example.com');
    expect(JSON.stringify(stored)).not.toContain('ot-1');

    await api.project();
    const before = await profileOf('email:ana.consent@example.com');
    expect(before.consent.marketing_email).toMatchObject({
      granted: true,
      source: 'cmp',
      statedAt: '2026-03-01T02:00:00.000Z',
    });

    const withdrawn = await post([
      {
        identifier: 'email:ana.consent@example.com',
        purposes: { marketing_email: false },
        occurredAt: '2026-03-02T10:00:00Z',
        statementId: 'ot-2',
      },
    ]);
    expect(withdrawn.statusCode, withdrawn.body).toBe(200);
    await api.project();
    const after = await profileOf('email:ana.consent@example.com');
    expect(after.profileId).toBe(before.profileId);
    expect(after.consent.marketing_email).toMatchObject({ granted: false, source: 'cmp' });
    expect(after.consent.personalization).toMatchObject({ granted: true });
    // A statement is no visit: the profile was never seen online or offline.
    expect(after.activity.firstSeenOnline).toBeNull();
    expect((await historyOf(after.profileId, 'marketing_email')).map((row) => row.granted)).toEqual(
      [true, false],
    );
  });

  it('stores a retried statement once: by its statementId, else by its content and time', async () => {
    const withId = {
      identifier: 'phone:+8613800138001',
      purposes: { marketing_sms: true },
      statementId: 'cmp-42',
    };
    for (let i = 0; i < 2; i++) expect((await post(withId)).json().accepted).toBe(1);
    // The same id with other content is the same statement: the first one counts.
    await post({ ...withId, purposes: { marketing_sms: false } });
    const withoutId = {
      identifier: 'member_id:M-7',
      purposes: { analytics: true },
      occurredAt: '2026-03-03T09:00:00Z',
    };
    for (let i = 0; i < 2; i++)
      expect((await post([withoutId, withoutId])).json().accepted).toBe(1);

    expect(await storedFor('phone', '+8613800138001')).toHaveLength(1);
    expect((await storedFor('phone', '+8613800138001'))[0]?.data).toMatchObject({
      consent: { purposes: { marketing_sms: true } },
    });
    expect(await storedFor('member_id', 'M-7')).toHaveLength(1);
  });

  it.each([
    [
      'no TYPE:VALUE, no purposes',
      { identifier: 'ana@example.com', purposes: {} },
      ['identifier', 'purposes'],
    ],
    [
      'a value that is not an email',
      { identifier: 'email:not-an-email', purposes: { analytics: true } },
      ['identifier'],
    ],
    [
      'a profile id',
      { identifier: 'profile:prf_1', purposes: { analytics: true } },
      ['identifier'],
    ],
    [
      'a purpose that is no boolean',
      { identifier: 'email:a@example.com', purposes: { analytics: 'yes' } },
      ['purposes.analytics'],
    ],
    [
      'an unknown field',
      { identifier: 'email:a@example.com', purposes: { analytics: true }, extra: 1 },
      [''],
    ],
    [
      'a bad time',
      { identifier: 'email:a@example.com', purposes: { analytics: true }, occurredAt: 'yesterday' },
      ['occurredAt'],
    ],
  ])('refuses %s with a 400 naming the path, and stores nothing', async (_name, body, paths) => {
    const size = await logSize();
    const response = await post(body);
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error.code).toBe('TANDEM_ERR_VALIDATION');
    expect(response.json().error.issues.map((issue: { path: string }) => issue.path)).toEqual(
      paths,
    );
    expect(await logSize()).toBe(size);
  });

  it('refuses the whole array when one statement is bad, naming its index', async () => {
    const size = await logSize();
    const good = { identifier: 'email:good@example.com', purposes: { analytics: true } };
    const response = await post([
      good,
      { identifier: 'phone:call me', purposes: { analytics: true } },
    ]);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.issues).toEqual([
      { path: '1.identifier', message: expect.stringContaining('phone') },
    ]);
    const tooMany = await post(Array.from({ length: 1001 }, () => good));
    expect(tooMany.statusCode).toBe(400);
    expect(await logSize()).toBe(size);
    expect(await storedFor('email', 'good@example.com')).toEqual([]);
  });

  it('refuses a purpose this deployment does not ask for, naming the ones it does', async () => {
    const size = await logSize();
    const response = await post([
      { identifier: 'email:a@example.com', purposes: { analytics: true } },
      { identifier: 'email:b@example.com', purposes: { newsletter: true, analytics: false } },
    ]);
    expect(response.statusCode).toBe(400);
    const [issue, ...rest] = response.json().error.issues;
    expect(rest).toEqual([]);
    expect(issue.path).toBe('1.purposes.newsletter');
    expect(issue.message).toContain('analytics, personalization, marketing_email, marketing_sms');
    expect(await logSize()).toBe(size);
  });

  it('drops a statement about a suppressed identifier, and counts it', async () => {
    const ingest = await openTestIngestApp();
    try {
      const gone = ingest.hasher.hash('email', 'gone@example.com');
      await ingest.suppression.add([gone]);
      const response = await ingest.app.inject({
        method: 'POST',
        url: '/v1/consents',
        headers: { 'content-type': 'application/json', authorization: BASIC_AUTH },
        payload: [
          { identifier: 'email:Gone@example.com', purposes: { analytics: true } },
          { identifier: 'email:kept@example.com', purposes: { analytics: true } },
        ],
      });
      expect(response.json()).toEqual({ success: true, accepted: 1, suppressed: 1 });
      await expect(collect(ingest.eventStore.readStream(subjectStream(gone)))).rejects.toThrow();
    } finally {
      await ingest.close();
    }
  });

  it('answers 401 without a write key, or with an unknown one', async () => {
    const body = { identifier: 'email:a@example.com', purposes: { analytics: true } };
    expect((await post(body, '')).statusCode).toBe(401);
    const unknown = `Basic ${Buffer.from('wk_nobody:').toString('base64')}`;
    expect((await post(body, unknown)).statusCode).toBe(401);
    expect((await post(body, ADMIN)).statusCode).toBe(401);
  });
});

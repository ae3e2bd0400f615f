import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aBatch, aShopper } from '../../fixtures/builders.js';
import { PosReceipt } from '../../schemas/pos.js';
import { ADMIN, openTestApi, type TestApi } from '../testing/api-app.js';
import { profilesRoutes } from './profiles.routes.js';

/** The email of a sample shopper whose profile was seen online and in stores (set in beforeAll). */
let OMNI_EMAIL: string;

let api: TestApi;
let marketer: string;
let analyst: string;
let officer: string;
beforeAll(async () => {
  api = await openTestApi();
  [marketer, analyst, officer] = await Promise.all([
    api.bearer('marketer'),
    api.bearer('analyst'),
    api.bearer('privacy_officer'),
  ]);
  OMNI_EMAIL = await omniShopperEmail();
});

/**
 * Ana, seen on both channels: she signs in on the web shop with her email
 * and phone, views a product, then pays in a store showing her member card
 * and typing the same phone. Returns her email.
 */
async function omniShopperEmail(): Promise<string> {
  const ana = aShopper('ana-omni')
    .withAccount()
    .withPhone()
    .withMemberCard()
    .withDevice('laptop')
    .build();
  const web = ana.on('laptop');
  const signIn = web.logsIn('2026-01-10T09:00:00Z');
  await api.sample.ingestor.tracking(
    aBatch([
      {
        ...signIn,
        traits: { email: String(ana.email), phone: String(ana.phone), city: 'Lyon' },
        context: { ...signIn.context, consent: { categoryPreferences: { marketing_email: true } } },
      } as typeof signIn,
      web.views('SKU-000001', '2026-01-10T09:01:00Z'),
    ]),
    Date.parse('2026-01-10T09:02:00Z'),
    { kind: 'web', id: 'web-shop' },
  );
  await api.sample.ingestor.receipts(
    [
      PosReceipt.parse(
        ana.buysInStore({
          store: 'store-001',
          skus: ['SKU-000001'],
          at: '2026-01-12T15:00:00Z',
          showsMemberCard: true,
          typesPhone: true,
        }),
      ),
    ],
    Date.parse('2026-01-12T15:01:00Z'),
    'tills',
  );
  await api.project();
  return ana.email as string;
}
afterAll(() => api?.close());

const get = (url: string, authorization: string) =>
  api.app.inject({ method: 'GET', url, headers: { authorization } });

async function profileIdOf(email: string): Promise<string> {
  const response = await get(
    `/v1/profiles?identifier=email:${encodeURIComponent(email)}`,
    marketer,
  );
  expect(response.statusCode).toBe(200);
  return response.json().profileId;
}

describe(profilesRoutes.name, () => {
  it('finds a profile by an identifier in the clear, normalised the way ingest did', async () => {
    const response = await get(
      `/v1/profiles?identifier=email:${encodeURIComponent(`  ${OMNI_EMAIL.toUpperCase()} `)}`,
      marketer,
    );
    expect(response.statusCode).toBe(200);
    const profile = response.json();
    expect(profile.profileId).toMatch(/^prf_/);
    expect(profile.status).toBe('active');
    expect(profile.identifierCounts.email).toBeGreaterThanOrEqual(1);
    expect(profile.traits).toMatchObject({ city: 'Lyon' });
    expect(profile.consent).toEqual({
      marketing_email: { granted: true, statedAt: '2026-01-10T09:01:00.000Z', source: 'web' },
    });
    expect(profile.activity).toEqual({
      events: 3,
      orders: 1,
      revenue: '10',
      // Clock skew corrected: the batch was sent at 09:01 and received at 09:02.
      firstSeenOnline: '2026-01-10T09:01:00.000Z',
      lastSeenOnline: '2026-01-10T09:02:00.000Z',
      firstSeenOffline: '2026-01-12T15:00:00.000Z',
      lastSeenOffline: '2026-01-12T15:00:00.000Z',
    });
    // Pseudonymous roles never see identifier values or hashes.
    expect(response.body).not.toContain(OMNI_EMAIL);
    expect(profile.personalData).toBeUndefined();
  });

  it('answers the same profile by id, and 404 for an unknown id or identifier', async () => {
    const id = await profileIdOf(OMNI_EMAIL);
    const byId = await get(`/v1/profiles/${id}`, analyst);
    expect(byId.statusCode).toBe(200);
    expect(byId.json().profileId).toBe(id);
    const unknown = await get('/v1/profiles/prf_doesnotexist', analyst);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('TANDEM_ERR_NOT_FOUND');
    const nobody = await get('/v1/profiles?identifier=email:nobody@example.org', marketer);
    expect(nobody.statusCode).toBe(404);
    expect(nobody.json().error.message).toContain('email');
  });

  it('audits each lookup by identifier with its type and outcome, never the value', async () => {
    const id = await profileIdOf(OMNI_EMAIL);
    await get('/v1/profiles?identifier=email:nobody@example.org', marketer);
    const [missed, found] = await api.audit.recent(2);
    expect(found).toMatchObject({
      action: 'profile.lookup',
      outcome: 'ok',
      details: { identifierType: 'email', profileId: id },
    });
    expect(missed).toMatchObject({
      action: 'profile.lookup',
      outcome: 'TANDEM_ERR_NOT_FOUND',
      details: { identifierType: 'email' },
    });
    expect(JSON.stringify([missed, found])).not.toMatch(/nobody@example\.org|@/);
  });

  it('says what is wrong with a bad identifier or profile id', async () => {
    const noType = await get('/v1/profiles?identifier=ana@example.com', marketer);
    expect(noType.statusCode).toBe(400);
    expect(noType.json().error.message).toContain('TYPE:VALUE');
    const badEmail = await get('/v1/profiles?identifier=email:not-an-email', marketer);
    expect(badEmail.statusCode).toBe(400);
    expect(badEmail.json().error.message).toContain('email');
    const badId = await get('/v1/profiles/42', marketer);
    expect(badId.statusCode).toBe(400);
    expect(badId.json().error.issues[0].path).toBe('profileId');
  });

  it('needs a key, and the right role for each read', async () => {
    const none = await api.app.inject({ method: 'GET', url: '/v1/profiles/prf_x' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    expect((await get('/v1/profiles/prf_x', 'Bearer tdm_key_000000000000_nope')).statusCode).toBe(
      401,
    );
    const analystLookup = await get(`/v1/profiles?identifier=email:${OMNI_EMAIL}`, analyst);
    expect(analystLookup.statusCode).toBe(403);
    expect(analystLookup.json().error.message).toContain('marketer or privacy_officer or admin');
  });

  it('unseals personal data for privacy officers only, and audits each read', async () => {
    const id = await profileIdOf(OMNI_EMAIL);
    const denied = await get(`/v1/profiles/${id}?include=personal_data`, marketer);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.message).toContain('privacy_officer');
    const response = await get(`/v1/profiles/${id}?include=personal_data`, officer);
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain(OMNI_EMAIL);
    const [entry] = await api.audit.recent(1);
    expect(entry).toMatchObject({
      action: 'profile.read_personal_data',
      details: { profileId: id },
    });
    expect(JSON.stringify(entry)).not.toContain(OMNI_EMAIL);
  });

  it('pages the timeline newest first across both channels, with a stable cursor', async () => {
    const id = await profileIdOf(OMNI_EMAIL);
    const seen: { eventId: string; occurredAt: string; channel: string }[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/v1/profiles/${id}/timeline?limit=3${cursor ? `&before=${cursor}` : ''}`;
      const response = await get(url, analyst);
      expect(response.statusCode).toBe(200);
      const page = response.json();
      expect(page.entries.length).toBeLessThanOrEqual(3);
      seen.push(...page.entries);
      cursor = page.next;
    } while (cursor);
    const profile = (await get(`/v1/profiles/${id}`, analyst)).json();
    expect(seen).toHaveLength(profile.activity.events);
    expect(new Set(seen.map((entry) => entry.eventId)).size).toBe(seen.length);
    const times = seen.map((entry) => entry.occurredAt);
    expect([...times].sort().reverse()).toEqual(times);
    expect(new Set(seen.map((entry) => entry.channel))).toEqual(new Set(['online', 'offline']));
    const bad = await get(`/v1/profiles/${id}/timeline?before=garbage`, analyst);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.issues[0].path).toBe('before');
  });

  it('explains the identity decisions behind a profile, with rule and evidence', async () => {
    const id = await profileIdOf(OMNI_EMAIL);
    const response = await get(`/v1/profiles/${id}/identity`, ADMIN);
    expect(response.statusCode).toBe(200);
    const { decisions } = response.json();
    expect(decisions[0].type).toBe('identity.profile_created');
    for (const decision of decisions) {
      expect(decision.evidence.eventId).toMatch(/^[0-9a-f-]{36}$/);
      expect(decision.explanation.length).toBeGreaterThan(10);
    }
    expect(decisions.map((d: { seq: number }) => d.seq)).toEqual(
      [...decisions.map((d: { seq: number }) => d.seq)].sort((a, b) => a - b),
    );
    expect((await get('/v1/profiles/prf_doesnotexist/identity', ADMIN)).statusCode).toBe(404);
  });
});

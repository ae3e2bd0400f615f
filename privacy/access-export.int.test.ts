import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { aBatch, aShopper, type ScriptedShopper } from '../fixtures/builders.js';
import { refreshModel } from '../query-api/recommendations/reco-model.js';
import { refreshSegment } from '../query-api/segments/segment-refresh.js';
import { openTestApi, type TestApi } from '../query-api/testing/api-app.js';
import { PosReceipt } from '../schemas/pos.js';
import type { SegmentCall } from '../schemas/segment.js';
import { selectRows } from '../warehouse/select.js';
import { type AccessExportDeps, writeAccessExport } from './access-export.js';
import { normaliseIdentifier } from './identifiers.js';
import type { Person } from './person.js';

const NORMALISE = { defaultCountryCode: '+1' };
const web = { kind: 'web', id: 'web-shop' } as const;
const app = { kind: 'app', id: 'shop-app' } as const;

let api: TestApi;
let deps: AccessExportDeps;
let ana: ScriptedShopper;
let bob: ScriptedShopper;
const ANA_PHONE = '+86 138 0013 8000';
const SEGMENT_NAME = 'Browsed online';

/** The call with Segment's consent convention on it. */
function consenting(call: SegmentCall, purposes: Record<string, boolean>): SegmentCall {
  return {
    ...call,
    context: { ...call.context, consent: { categoryPreferences: purposes } },
  } as SegmentCall;
}

/** The call with `traits` added (identify calls). */
function withTraits(call: SegmentCall, traits: Record<string, unknown>): SegmentCall {
  return { ...call, traits: { ...(call as { traits?: object }).traits, ...traits } } as SegmentCall;
}

/**
 * Ana across channels: signs in on the web shop with her email and phone and
 * consents, views and orders; signs in on the app (her member card linked
 * there), views; pays in a store with her card and phone and agrees to SMS.
 * Bob shops on the web and in a store too.
 */
async function ingestPeople(): Promise<void> {
  ana = aShopper('ana-dsar')
    .withAccount()
    .withPhone()
    .withMemberCard('M-ANA-77', { inApp: true })
    .withDevice('laptop', 'web')
    .withDevice('phone', 'app')
    .build();
  bob = aShopper('bob-dsar').withAccount().withMemberCard('M-BOB-12').withDevice('pc').build();
  const laptop = ana.on('laptop');
  await api.sample.ingestor.tracking(
    aBatch([
      consenting(
        withTraits(laptop.logsIn('2026-01-10T09:00:00Z'), {
          phone: ANA_PHONE,
          firstName: 'Ana',
          address: { street: '1 Rue, "Quoted", Town', city: 'Lyon' },
        }),
        { analytics: true, personalization: true, marketing_email: false },
      ),
      laptop.views('SKU-000001', '2026-01-10T09:01:00Z'),
      laptop.views('SKU-000002', '2026-01-10T09:02:00Z'),
      laptop.ordersOnline('W-1', ['SKU-000001', 'SKU-000002'], '2026-01-10T09:05:00Z'),
    ]),
    Date.parse('2026-01-10T09:06:00Z'),
    web,
  );
  const phone = ana.on('phone');
  await api.sample.ingestor.tracking(
    aBatch([
      phone.logsIn('2026-01-11T20:00:00Z'),
      phone.views('SKU-000003', '2026-01-11T20:01:00Z'),
    ]),
    Date.parse('2026-01-11T20:02:00Z'),
    app,
  );
  const pc = bob.on('pc');
  await api.sample.ingestor.tracking(
    aBatch([
      consenting(pc.logsIn('2026-01-10T10:00:00Z'), { personalization: true }),
      pc.views('SKU-000001', '2026-01-10T10:01:00Z'),
      pc.views('SKU-000003', '2026-01-10T10:02:00Z'),
    ]),
    Date.parse('2026-01-10T10:03:00Z'),
    web,
  );
  await api.sample.ingestor.receipts(
    [
      PosReceipt.parse(
        ana.buysInStore({
          store: 'store-001',
          skus: ['SKU-000002', 'SKU-000003'],
          at: '2026-01-12T15:00:00Z',
          showsMemberCard: true,
          typesPhone: ANA_PHONE,
          consent: { marketing_sms: true },
        }),
      ),
      PosReceipt.parse(
        bob.buysInStore({
          store: 'store-002',
          skus: ['SKU-000001'],
          at: '2026-01-12T16:00:00Z',
          showsMemberCard: true,
        }),
      ),
    ],
    Date.parse('2026-01-12T16:01:00Z'),
    'tills',
  );
  await api.project();
}

/** The person holding `email` as a privacy request resolves them: their profiles and identifiers, from `identity`. */
async function personOf(email: string): Promise<Person> {
  const normalised = normaliseIdentifier('email', email, NORMALISE);
  if (!normalised.ok) throw new Error('not an email');
  const hash = api.sample.hasher.hash('email', normalised.value).hash;
  const [holder] = await selectRows<{ profile_id: string }>(
    api.warehouse.client,
    'SELECT profile_id FROM tandem.identity WHERE identifier_hash = {hash:String}',
    { hash },
  );
  const survivor = String(holder?.profile_id);
  const absorbed = await selectRows<{ profile_id: string }>(
    api.warehouse.client,
    'SELECT profile_id FROM tandem.profiles WHERE merged_into = {id:String} ORDER BY profile_id',
    { id: survivor },
  );
  const identifiers = await selectRows<{ identifier_type: string; identifier_hash: string }>(
    api.warehouse.client,
    'SELECT identifier_type, identifier_hash FROM tandem.identity WHERE profile_id = {id:String} ORDER BY identifier_type, identifier_hash',
    { id: survivor },
  );
  return {
    profileIds: [survivor, ...absorbed.map((row) => row.profile_id)],
    identifiers: identifiers.map((row) => ({
      type: row.identifier_type,
      hash: row.identifier_hash,
    })),
  };
}

/** A Writable that keeps what it is given. */
function collecting(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}

/** Every file of a zip, as text. */
async function unzip(zip: Buffer): Promise<Map<string, string>> {
  const archive = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(zip, { lazyEntries: true }, (error, file) =>
      error ? reject(error) : resolve(file),
    ),
  );
  const files = new Map<string, string>();
  await new Promise<void>((resolve, reject) => {
    archive.on('error', reject);
    archive.on('end', resolve);
    archive.on('entry', (entry: yauzl.Entry) => {
      archive.openReadStream(entry, (error, stream) => {
        if (error) return reject(error);
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('error', reject);
        stream.on('end', () => {
          files.set(entry.fileName, Buffer.concat(chunks).toString('utf8'));
          archive.readEntry();
        });
      });
    });
    archive.readEntry();
  });
  return files;
}

beforeAll(async () => {
  api = await openTestApi({ sample: false });
  deps = {
    eventStore: api.sample.eventStore,
    keyStore: api.sample.keyStore,
    warehouse: api.warehouse,
    hasher: api.sample.hasher,
    normalise: NORMALISE,
  };
  await ingestPeople();
  const segment = await api.segments.create(
    {
      definition: {
        name: SEGMENT_NAME,
        condition: { type: 'event', filter: { eventName: 'Product Viewed', channel: 'online' } },
      },
      refreshIntervalMinutes: null,
    },
    'test',
  );
  await refreshSegment(
    { warehouse: api.warehouse, segments: api.segments },
    segment.segmentId,
    'test',
    new Date('2026-01-20T00:00:00Z'),
  );
  await refreshModel(api.warehouse);
}, 120_000);
afterAll(() => api?.close());

describe(writeAccessExport.name, () => {
  it('exports everything held about one person, and nothing about anyone else', async () => {
    const person = await personOf(String(ana.email));
    const { out, bytes } = collecting();
    const summary = await writeAccessExport(deps, person, out, {
      requestId: 'req_test_1',
      now: new Date('2026-02-01T12:00:00Z'),
    });
    const files = await unzip(bytes());
    const text = (name: string) => {
      const content = files.get(name);
      if (content === undefined) throw new Error(`${name} is not in the zip`);
      return content;
    };
    const json = (name: string) => JSON.parse(text(name));

    // The README names every file, and every file it names is there.
    const readme = text('README.txt');
    expect(readme).toContain('req_test_1');
    expect(readme).toContain('2026-02-01T12:00:00.000Z');
    const listed = readme
      .split('\n')
      .filter((line) => /^[A-Za-z_]+\.(json|csv|ndjson|txt)$/.test(line));
    expect(new Set(listed)).toEqual(new Set(files.keys()));
    for (const name of [
      'profile.json',
      'identifiers.json',
      'identifiers.csv',
      'events.ndjson',
      'events.csv',
      'consent_history.json',
      'consent_history.csv',
      'orders.json',
      'orders.csv',
      'order_lines.csv',
      'segment_memberships.json',
      'segment_memberships.csv',
      'recommendations.json',
      'recommendations.csv',
      'identity.json',
    ])
      expect(files.has(name), name).toBe(true);

    // Identifiers in plain text (normalised as matching knows them).
    const identifiers = json('identifiers.json') as { type: string; value: string | null }[];
    const values = (type: string) => identifiers.filter((i) => i.type === type).map((i) => i.value);
    expect(values('email')).toEqual([ana.email]);
    expect(values('phone')).toEqual(['+8613800138000']);
    expect(values('member_id')).toEqual(['M-ANA-77']);
    expect(values('user_id')).toEqual([ana.userId]);
    expect(values('anonymous_id').sort()).toEqual(
      [ana.devices.laptop?.anonymousId, ana.devices.phone?.anonymousId].sort(),
    );
    expect(values('payment_token')).toEqual([ana.cardToken]);
    expect(summary.identifiers).toEqual({
      total: identifiers.length,
      inPlainText: identifiers.length,
    });

    // Web, app and store events, personal fields unsealed and back in place.
    const events = text('events.ndjson')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events).toHaveLength(7);
    expect(new Set(events.map((e) => e.source.kind))).toEqual(new Set(['web', 'app', 'pos']));
    const webLogin = events.find((e) => e.source.kind === 'web' && e.type === 'identify');
    expect(webLogin.personalData).toBe('restored');
    expect(webLogin.data.userId).toBe(ana.userId);
    expect(webLogin.data.anonymousId).toBe(ana.devices.laptop?.anonymousId);
    expect(webLogin.data.traits).toMatchObject({
      email: ana.email,
      phone: ANA_PHONE,
      firstName: 'Ana',
      address: { street: '1 Rue, "Quoted", Town', city: 'Lyon' },
    });
    expect(webLogin.data.context.consent.categoryPreferences.personalization).toBe(true);
    const appLogin = events.find((e) => e.source.kind === 'app' && e.type === 'identify');
    expect(appLogin.data.traits.memberId).toBe('M-ANA-77');
    const receipt = events.find((e) => e.type === 'pos.receipt');
    expect(receipt.data).toMatchObject({
      memberId: 'M-ANA-77',
      phone: ANA_PHONE,
      storeId: 'store-001',
    });
    expect(receipt.data.tenders[0]).toMatchObject({ type: 'card', cardToken: ana.cardToken });

    // Consent history: the web statement and the one at the till.
    const history = json('consent_history.json') as { purpose: string; granted: boolean }[];
    expect(Object.fromEntries(history.map((row) => [row.purpose, row.granted]))).toEqual({
      analytics: true,
      personalization: true,
      marketing_email: false,
      marketing_sms: true,
    });
    expect(json('profile.json').consent).toHaveLength(4);

    // Orders of both channels, their identifier in plain text.
    const orders = json('orders.json') as { channel: string; identifier: string | null }[];
    expect(orders.map((o) => o.channel).sort()).toEqual(['offline', 'online']);
    expect(orders.every((o) => o.identifier !== null)).toBe(true);
    expect(json('order_lines.json')).toHaveLength(4);

    // The segment, by name, entered and not left; the model her views trained.
    expect(json('segment_memberships.json')).toEqual([
      expect.objectContaining({
        segment_name: SEGMENT_NAME,
        entered_at: '2026-01-20T00:00:00.000Z',
        left_at: null,
      }),
    ]);
    expect(json('recommendations.json')).toEqual([
      expect.objectContaining({ profile_id: person.profileIds[0] }),
    ]);
    const identity = json('identity.json') as unknown[];
    expect(identity.length).toBeGreaterThan(0);
    expect(JSON.stringify(identity)).toContain(String(ana.email));

    // Each CSV parses back to as many rows as its JSON.
    const csvRows = (name: string) =>
      (parse(text(name), { bom: true, columns: true }) as Record<string, string>[]).length;
    const profile = json('profile.json');
    expect(csvRows('profiles.csv')).toBe(profile.profiles.length);
    expect(csvRows('traits.csv')).toBe(profile.traits.length);
    expect(csvRows('consents.csv')).toBe(profile.consent.length);
    expect(csvRows('events.csv')).toBe(events.length);
    for (const name of files.keys())
      if (name.endsWith('.csv') && files.has(name.replace('.csv', '.json')))
        expect(csvRows(name), name).toBe(json(name.replace('.csv', '.json')).length);
    const eventsCsv = parse(text('events.csv'), { bom: true, columns: true }) as Record<
      string,
      string
    >[];
    const receiptRow = eventsCsv.find((row) => row.type === 'pos.receipt');
    expect(receiptRow).toMatchObject({ event_name: 'Order Completed', store_id: 'store-001' });
    expect(JSON.parse(String(receiptRow?.data)).memberId).toBe('M-ANA-77');

    // Nothing of Bob's, in any file; nothing of Ana's in the summary.
    const everything = [...files.values()].join('\n');
    const bobPerson = await personOf(String(bob.email));
    for (const secret of [
      String(bob.email),
      String(bob.userId),
      'M-BOB-12',
      bob.cardToken,
      String(bob.devices.pc?.anonymousId),
      ...bobPerson.profileIds,
      ...bobPerson.identifiers.map((i) => i.hash),
    ])
      expect(everything).not.toContain(secret);
    const reported = JSON.stringify(summary);
    for (const secret of [
      String(ana.email),
      'M-ANA-77',
      '8613800138000',
      ...person.identifiers.map((i) => i.hash),
    ])
      expect(reported).not.toContain(secret);
    expect(summary.files['events.ndjson']).toBe(7);
    expect(summary.files['events.csv']).toBe(7);
    expect(summary.bytes).toBe(bytes().length);
  });

  it('streams a person with 20k events in bounded memory', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const carol = aShopper('carol-dsar').withDevice('tablet').build();
    const tablet = carol.on('tablet');
    const padding = 'p'.repeat(4000);
    const start = Date.parse('2025-06-01T00:00:00Z');
    for (let batch = 0; batch < 40; batch++) {
      const calls = Array.from({ length: 500 }, (_, i) => {
        const call = tablet.views(
          `SKU-${i % 50}`,
          new Date(start + (batch * 500 + i) * 60_000),
        ) as SegmentCall & { properties: Record<string, unknown> };
        return { ...call, properties: { ...call.properties, padding } } as SegmentCall;
      });
      await api.sample.ingestor.tracking(aBatch(calls), Date.parse('2026-01-01T00:00:00Z'), web);
    }
    const device = String(carol.devices.tablet?.anonymousId);
    const person: Person = {
      profileIds: [],
      identifiers: [api.sample.hasher.hash('anonymous_id', device)],
    };

    let bytes = 0;
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        done();
      },
    });
    gc();
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    const sampler = setInterval(() => {
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }, 250);
    const summary = await writeAccessExport(deps, person, out, { requestId: 'req_test_2' }).finally(
      () => clearInterval(sampler),
    );
    expect(summary.files['events.ndjson']).toBe(20_000);
    expect(summary.files['events.csv']).toBe(20_000);
    expect(summary.files['identifiers.json']).toBe(1);
    expect(bytes).toBe(summary.bytes);
    // Holding the events would take more than 80 MB (20k × 4 kB of padding alone).
    expect(peak - baseline).toBeLessThan(40 * 1024 ** 2);
  });

  it('fails, destroying its output, when a source fails', async () => {
    const person = await personOf(String(ana.email));
    const broken = {
      ...deps,
      warehouse: {
        ...deps.warehouse,
        client: {
          query: async () => {
            throw new Error('warehouse down');
          },
        },
      },
    } as unknown as AccessExportDeps;
    const { out } = collecting();
    await expect(writeAccessExport(broken, person, out, { requestId: 'r' })).rejects.toThrow(
      'warehouse down',
    );
    expect(out.destroyed).toBe(true);
  });

  it('stops when its reader goes away mid-export', async () => {
    const person = await personOf(String(ana.email));
    let writes = 0;
    const out = new Writable({
      highWaterMark: 16,
      write(_chunk, _encoding, done) {
        done(++writes > 3 ? new Error('client went away') : undefined);
      },
    });
    await expect(writeAccessExport(deps, person, out, { requestId: 'r' })).rejects.toThrow(
      'client went away',
    );
    // Whatever the zip still had in flight must not surface as an unhandled error.
    await new Promise((resolve) => setTimeout(resolve, 200));
  });
});

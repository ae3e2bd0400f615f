import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../eventstore/event-store.js';
import { openLmdbEventStore } from '../eventstore/event-store.lmdb.js';
import { collect } from '../eventstore/testing/helpers.js';
import { aBatch, aShopper, type ScriptedShopper } from '../fixtures/builders.js';
import { readSampleFiles } from '../fixtures/sample.js';
import { IdentifierHasher } from '../privacy/identifiers.js';
import type { KeyStore } from '../privacy/keystore.js';
import { openLmdbKeyStore } from '../privacy/keystore.lmdb.js';
import { unseal } from '../privacy/seal.js';
import type { SuppressionList } from '../privacy/suppression.js';
import { openLmdbSuppressionList } from '../privacy/suppression.lmdb.js';
import { Envelope, type Source } from '../schemas/envelope.js';
import { PosReceipt } from '../schemas/pos.js';
import { SegmentBatch } from '../schemas/segment.js';
import { createIngestor, type Ingestor } from './ingestor.js';

const web: Source = { kind: 'web', id: 'web-shop' };

describe(createIngestor.name, () => {
  let dir: string;
  let eventStore: EventStore;
  let keyStore: KeyStore;
  let suppression: SuppressionList;
  let ingestor: Ingestor;
  let metrics: Registry;
  const hasher = new IdentifierHasher(randomBytes(32));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-ingest-'));
    eventStore = await openLmdbEventStore({ path: join(dir, 'eventstore') });
    keyStore = await openLmdbKeyStore({ path: join(dir, 'keys'), masterKey: randomBytes(32) });
    suppression = await openLmdbSuppressionList({ path: join(dir, 'suppression') });
    metrics = new Registry();
    ingestor = createIngestor({
      eventStore,
      keyStore,
      hasher,
      suppression,
      normalise: { defaultCountryCode: '+1' },
      metrics,
    });
  });
  afterAll(async () => {
    await Promise.all([eventStore.close(), keyStore.close(), suppression.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  /** The shopper logs in on a device; returns the device's stream and the envelope stored there. */
  async function storedLogin(shopper: ScriptedShopper, device: string) {
    await ingestor.tracking(
      SegmentBatch.parse(aBatch([shopper.on(device).logsIn('2026-03-02T09:00:00Z')])),
      Date.now(),
      web,
    );
    const anonymousId = shopper.devices[device]?.anonymousId as string;
    const stream = `anonymous_id-${hasher.hash('anonymous_id', anonymousId).hash}`;
    const [event] = await collect(eventStore.readStream(stream));
    return { stream, envelope: Envelope.parse(event?.data) };
  }

  /** The envelope's sealed block, opened with its data key. */
  async function unsealed(envelope: Envelope) {
    const key = await keyStore.find(envelope.pii?.keyId as string);
    return unseal(
      envelope.pii as NonNullable<Envelope['pii']>,
      key as NonNullable<typeof key>,
      envelope.id,
    );
  }

  it('lands the whole sample — every call and receipt once — with no plaintext email or phone in the log', async () => {
    const sample = await readSampleFiles();
    const manifest = JSON.parse(String(sample.get('manifest.json'))) as {
      counts: { calls: Record<string, number>; receipts: number };
    };
    const batches = String(sample.get('clickstream.ndjson')).trimEnd().split('\n');
    const receipts = String(sample.get('pos/receipts.ndjson')).trimEnd().split('\n');
    const receivedAt = Date.parse('2026-02-01T00:00:00Z');
    for (const line of batches)
      await ingestor.tracking(SegmentBatch.parse(JSON.parse(line)), receivedAt, web);
    await ingestor.receipts(
      receipts.map((line) => PosReceipt.parse(JSON.parse(line))),
      receivedAt,
      'till-system',
    );

    const all = await collect(eventStore.readAll());
    const calls = Object.values(manifest.counts.calls).reduce((sum, n) => sum + n, 0);
    expect(all.filter((event) => event.type === 'pos.receipt')).toHaveLength(
      manifest.counts.receipts,
    );
    expect(all).toHaveLength(calls + manifest.counts.receipts);
    expect(new Set(all.map((event) => event.id)).size).toBe(all.length);
    for (const event of all.slice(0, 500)) Envelope.parse(event.data);

    const truth = String(sample.get('truth.ndjson'));
    const secrets = [...truth.matchAll(/"type":"(email|phone)","value":"([^"]+)"/g)].map(
      (match) => match[2] as string,
    );
    const nationalPhones = secrets
      .filter((value) => value.startsWith('+1'))
      .map((value) => value.slice(2));
    expect(secrets.length).toBeGreaterThan(50);
    const files = await readdir(join(dir, 'eventstore'));
    const raw = Buffer.concat(
      await Promise.all(files.map((file) => readFile(join(dir, 'eventstore', file)))),
    );
    const leaked = [...secrets, ...nationalPhones].filter((secret) => raw.includes(secret));
    expect(leaked).toEqual([]);
  });

  it('stores a retried batch once, even when the retry is composed differently', async () => {
    const ana = aShopper('retry-ana').withDevice('phone').build();
    const at = '2026-03-01T10:00:00.000Z';
    const calls = [
      ana.on('phone').views('SKU-1', at),
      ana.on('phone').views('SKU-2', at),
      ana.on('phone').views('SKU-3', at),
    ];
    const first = SegmentBatch.parse(aBatch(calls.slice(0, 2)));
    await ingestor.tracking(first, Date.parse(at), web);
    await ingestor.tracking(first, Date.parse(at), web);
    await ingestor.tracking(SegmentBatch.parse(aBatch(calls)), Date.parse(at), web);
    const stream = `anonymous_id-${hasher.hash('anonymous_id', ana.devices.phone?.anonymousId as string).hash}`;
    const stored = await collect(eventStore.readStream(stream));
    expect(
      stored.map(
        (event) => (event.data as { data: { properties: { sku: string } } }).data.properties.sku,
      ),
    ).toEqual(['SKU-1', 'SKU-2', 'SKU-3']);
  });

  it("corrects a device's clock skew with sentAt, as Segment does", async () => {
    const ben = aShopper('skew-ben').withDevice('laptop').build();
    // The laptop's clock runs two hours fast: it stamps the call and the batch with it.
    const call = ben.on('laptop').views('SKU-9', '2026-03-01T12:00:00.000Z');
    const batch = SegmentBatch.parse(aBatch([call], '2026-03-01T12:00:05.000Z'));
    await ingestor.tracking(batch, Date.parse('2026-03-01T10:00:05.000Z'), web);
    const stream = `anonymous_id-${hasher.hash('anonymous_id', ben.devices.laptop?.anonymousId as string).hash}`;
    const [event] = await collect(eventStore.readStream(stream));
    expect(Envelope.parse(event?.data).occurredAt).toBe('2026-03-01T10:00:00.000Z');
  });

  it('seals personal data under the stream subject’s key, and destroying the key shreds it', async () => {
    const cai = aShopper('seal-cai').withAccount().withDevice('web').build();
    const { stream, envelope } = await storedLogin(cai, 'web');
    expect(JSON.stringify(envelope)).not.toContain('seal-cai@example.com');
    expect(envelope.identifiers.map((identifier) => identifier.type).sort()).toEqual([
      'anonymous_id',
      'email',
      'user_id',
    ]);
    expect(await unsealed(envelope)).toMatchObject({
      'traits.email': 'seal-cai@example.com',
      userId: 'user-seal-cai',
    });
    await keyStore.destroy(stream);
    expect(await keyStore.find(envelope.pii?.keyId as string)).toBeUndefined();
  });

  it('takes a member card linked in the app from identify traits as a member_id, sealed', async () => {
    const ivy = aShopper('app-ivy')
      .withAccount()
      .withMemberCard('M-app-ivy', { inApp: true })
      .withDevice('app', 'app')
      .build();
    const { envelope } = await storedLogin(ivy, 'app');
    expect(envelope.identifiers).toContainEqual(hasher.hash('member_id', 'M-app-ivy'));
    expect(JSON.stringify(envelope)).not.toContain('M-app-ivy');
    expect(await unsealed(envelope)).toMatchObject({ 'traits.memberId': 'M-app-ivy' });
  });

  it('drops and counts the facts of suppressed identifiers', async () => {
    const dora = aShopper('gone-dora').withMemberCard().build();
    await suppression.add([hasher.hash('member_id', dora.memberId as string)]);
    const receipt = PosReceipt.parse(
      dora.buysInStore({
        store: 'store-001',
        at: '2026-03-03T10:00:00Z',
        skus: ['SKU-1'],
        showsMemberCard: true,
      }),
    );
    const result = await ingestor.receipts([receipt], Date.now(), 'till-system');
    expect(result).toEqual({ accepted: 0, suppressed: 1 });
    expect(
      await metrics.getSingleMetricAsString('tandem_ingest_events_suppressed_total'),
    ).toContain('source="pos"} 1');
  });

  it('counts catalog upserts under their own source, not the tills’', async () => {
    const product = {
      sku: 'SKU-COUNTED',
      name: 'Counted kettle',
      category: 'kitchen',
      brand: 'Acme',
      price: 29.5,
      currency: 'EUR',
    };
    const result = await ingestor.catalog({ products: [product] }, Date.now(), 'pim');
    expect(result.accepted).toBe(1);
    const accepted = await metrics.getSingleMetricAsString('tandem_ingest_events_accepted_total');
    expect(accepted).toContain('source="catalog"} 1');
  });
});

/**
 * The person privacy tests erase: Ana, seen on the web shop, in the app and
 * at two stores, with consents, a segment membership and a recommendation
 * model trained on her data; and Bob and a few others, who must survive her
 * erasure. Runs on the real platform (`startPlatform`) over a temp data
 * directory, through the HTTP routes a user would call.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PARTS, type Platform, startPlatform } from '../../cli/platform.js';
import { openRuntime, type Runtime } from '../../cli/runtime.js';

export const ANA = {
  email: 'ana.erasure@example.com',
  phone: '+15550104242',
  memberId: 'M-ANA-0042',
  userId: 'u-ana-0042',
  webDevice: 'anon-web-ana-7f3e',
  appDevice: 'anon-app-ana-91c2',
  cardNorth: 'tok-ana-north-5512',
  cardSouth: 'tok-ana-south-9034',
} as const;

export const BOB = {
  email: 'bob.stays@example.com',
  memberId: 'M-BOB-0077',
  userId: 'u-bob-0077',
  webDevice: 'anon-web-bob-2a10',
} as const;

const PRODUCTS = ['sku-shoe-1', 'sku-shoe-2', 'sku-sock-1', 'sku-bag-1', 'sku-coat-1'];

/** An answer as the tests read it, from `inject` or from `fetch`. */
export interface Answer {
  readonly statusCode: number;
  readonly body: string;
  readonly rawPayload: Buffer;
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers as the route shapes them, as with inject's json()
  json(): any;
}

/** The platform as the scenario talks to it: in this process, or a `tandem` process over HTTP. */
export interface ScenarioClient {
  /** `Authorization` of the bootstrap admin key. */
  readonly admin: string;
  readonly writeKey: string;
  request(
    method: 'GET' | 'POST',
    url: string,
    options?: { readonly authorization?: string; readonly payload?: unknown },
  ): Promise<Answer>;
  /** Waits until the projector has written everything in the log (twice in a row: decisions follow facts). */
  settle(): Promise<void>;
}

export interface ScenarioPlatform extends ScenarioClient {
  readonly dataDir: string;
  readonly runtime: Runtime;
  readonly platform: Platform;
  /** Closes the platform and its runtime (the data directory stays). */
  stop(): Promise<void>;
}

/** Starts the platform on `dataDir` (a new temp directory when none), in this process. */
export async function startScenarioPlatform(
  options: { dataDir?: string } = {},
): Promise<ScenarioPlatform> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'tandem-privacy-')));
  const runtime = await openRuntime({
    TANDEM_DATA_DIR: dataDir,
    TANDEM_LOG_LEVEL: 'warn',
    TANDEM_LOG_FORMAT: 'json',
  });
  const platform = await startPlatform(runtime, { host: '127.0.0.1', port: 0, parts: PARTS });
  return {
    dataDir,
    runtime,
    platform,
    admin: `Bearer ${platform.adminKey.value}`,
    writeKey: platform.writeKey.value,
    async request(method, url, options = {}) {
      const answer = await platform.app.inject({
        method,
        url,
        headers: options.authorization ? { authorization: options.authorization } : {},
        ...(options.payload === undefined ? {} : { payload: options.payload as object }),
      });
      return answer;
    },
    async settle() {
      const projector = platform.projector;
      if (!projector) throw new Error('the scenario platform runs no projector');
      for (let quiet = 0; quiet < 2; ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        quiet = (await projector.lag()).events === 0 ? quiet + 1 : 0;
      }
    },
    async stop() {
      await platform.close();
      await runtime.close();
    },
  };
}

/** A `tandem` process serving at `address`, as the scenario talks to it. */
export function httpClient(address: string, adminKey: string, writeKey: string): ScenarioClient {
  const request: ScenarioClient['request'] = async (method, url, options = {}) => {
    const response = await fetch(`${address}${url}`, {
      method,
      headers: {
        ...(options.authorization ? { authorization: options.authorization } : {}),
        ...(options.payload === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(options.payload === undefined ? {} : { body: JSON.stringify(options.payload) }),
    });
    const rawPayload = Buffer.from(await response.arrayBuffer());
    const body = rawPayload.toString('utf8');
    return { statusCode: response.status, body, rawPayload, json: () => JSON.parse(body) };
  };
  return {
    admin: `Bearer ${adminKey}`,
    writeKey,
    request,
    async settle() {
      for (let quiet = 0; quiet < 2; ) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const metrics = (await request('GET', '/metrics')).body;
        quiet = /^tandem_projector_lag_events 0$/m.test(metrics) ? quiet + 1 : 0;
      }
    },
  };
}

/** Sends `payload` to an ingest route with the write key; throws unless it is accepted. */
export async function ingest(test: ScenarioClient, url: string, payload: unknown): Promise<Answer> {
  const response = await test.request('POST', url, {
    authorization: `Basic ${Buffer.from(`${test.writeKey}:`).toString('base64')}`,
    payload,
  });
  if (response.statusCode !== 200)
    throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  return response;
}

/** Sends the scenario's catalog, Ana, Bob and a few others through the ingest routes. */
export async function ingestScenario(
  test: ScenarioClient,
  options: { anaViews?: number } = {},
): Promise<void> {
  const send = (url: string, payload: unknown) => ingest(test, url, payload);
  await send(
    '/v1/catalog/products',
    PRODUCTS.map((sku, i) => ({
      sku,
      name: `Product ${i}`,
      category: sku.split('-')[1],
      brand: 'Tandem',
      price: 10 + i,
      currency: 'USD',
    })),
  );
  await send(
    '/v1/catalog/stores',
    ['store-north', 'store-south'].map((storeId, i) => ({
      storeId,
      name: storeId,
      city: 'Springfield',
      district: `D${i}`,
      lat: 40,
      lon: -75,
      timeZone: 'America/New_York',
      categories: ['shoe', 'sock', 'bag', 'coat'],
    })),
  );
  const consent = {
    consent: {
      categoryPreferences: {
        analytics: true,
        personalization: true,
        marketing_email: true,
        marketing_sms: false,
      },
    },
  };
  const at = (day: number, minute = 0) =>
    new Date(Date.UTC(2026, 10, day, 12, minute)).toISOString();

  // Ana on the web shop: an identify with her contact details, then browsing.
  const views = options.anaViews ?? 6;
  await send('/v1/batch', {
    batch: [
      {
        type: 'identify',
        messageId: 'ana-web-identify',
        anonymousId: ANA.webDevice,
        userId: ANA.userId,
        traits: { email: ANA.email, phone: ANA.phone, memberId: ANA.memberId, city: 'Springfield' },
        context: consent,
        timestamp: at(1),
      },
    ],
  });
  for (let start = 0; start < views; start += 500)
    await send('/v1/batch', {
      batch: Array.from({ length: Math.min(500, views - start) }, (_, i) => ({
        type: 'track',
        event: 'Product Viewed',
        messageId: `ana-web-view-${start + i}`,
        anonymousId: ANA.webDevice,
        userId: ANA.userId,
        properties: { product_id: PRODUCTS[(start + i) % 2] },
        timestamp: at(2, (start + i) % 600),
      })),
    });
  // Ana in the app: logged in, adds to cart and orders online.
  await send('/v1/batch', {
    batch: [
      {
        type: 'screen',
        name: 'Home',
        messageId: 'ana-app-screen',
        anonymousId: ANA.appDevice,
        userId: ANA.userId,
        timestamp: at(3),
      },
      {
        type: 'track',
        event: 'Order Completed',
        messageId: 'ana-app-order',
        anonymousId: ANA.appDevice,
        userId: ANA.userId,
        properties: {
          order_id: 'ana-online-1',
          revenue: 12,
          products: [{ product_id: 'sku-shoe-2', price: 12, quantity: 1 }],
        },
        timestamp: at(3, 5),
      },
    ],
  });
  // Ana at two stores with her member card; she signs up for the programme at the first.
  for (const [i, storeId] of ['store-north', 'store-south'].entries())
    await send('/v1/pos/receipts', {
      receiptId: `ana-receipt-${i}`,
      storeId,
      registerId: 'r1',
      occurredAt: at(5 + i),
      currency: 'USD',
      lines: [{ sku: PRODUCTS[2 + i], quantity: 1, unitPrice: 12 + i }],
      tenders: [
        { type: 'card', amount: 12 + i, cardToken: i === 0 ? ANA.cardNorth : ANA.cardSouth },
      ],
      memberId: ANA.memberId,
      phone: ANA.phone,
      ...(i === 0 ? { consent: { purposes: { marketing_sms: true } } } : {}),
    });

  // Bob and some other shoppers: they must all survive Ana's erasure.
  await send('/v1/batch', {
    batch: [
      {
        type: 'identify',
        messageId: 'bob-identify',
        anonymousId: BOB.webDevice,
        userId: BOB.userId,
        traits: { email: BOB.email, memberId: BOB.memberId },
        context: consent,
        timestamp: at(1),
      },
      ...[0, 1, 2].map((i) => ({
        type: 'track',
        event: 'Product Viewed',
        messageId: `bob-view-${i}`,
        anonymousId: BOB.webDevice,
        userId: BOB.userId,
        properties: { product_id: PRODUCTS[i] },
        timestamp: at(2, i),
      })),
    ],
  });
  for (let shopper = 0; shopper < 6; shopper++)
    await send('/v1/pos/receipts', {
      receiptId: `other-receipt-${shopper}`,
      storeId: 'store-north',
      registerId: 'r2',
      occurredAt: at(7, shopper),
      currency: 'USD',
      lines: [
        { sku: PRODUCTS[shopper % 5], quantity: 1, unitPrice: 10 },
        { sku: PRODUCTS[(shopper + 2) % 5], quantity: 1, unitPrice: 10 },
      ],
      tenders: [{ type: 'cash', amount: 20 }],
      memberId: shopper === 0 ? BOB.memberId : `M-OTHER-${shopper}`,
    });
}

/** Calls the query API with an API key. */
export function call(
  test: ScenarioClient,
  method: 'GET' | 'POST',
  url: string,
  authorization: string,
  payload?: object,
): Promise<Answer> {
  return test.request(method, url, { authorization, ...(payload ? { payload } : {}) });
}

/** An API key with `role`, created through the API. */
export async function keyWithRole(test: ScenarioClient, role: string): Promise<string> {
  const response = await call(test, 'POST', '/v1/keys', test.admin, {
    name: `${role} for the privacy test`,
    grant: { kind: 'api', roles: [role] },
  });
  if (response.statusCode !== 201) throw new Error(`key: ${response.statusCode} ${response.body}`);
  return `Bearer ${response.json().token}`;
}

/** The profile id and identifiers of the person with `email`, as the warehouse knows them now (through the API). */
export async function personInWarehouse(test: ScenarioClient, email: string) {
  const response = await call(
    test,
    'GET',
    `/v1/profiles?identifier=${encodeURIComponent(`email:${email}`)}`,
    test.admin,
  );
  if (response.statusCode !== 200)
    throw new Error(`profile: ${response.statusCode} ${response.body}`);
  const profileId = response.json().profileId as string;
  const sql = await call(test, 'POST', '/v1/sql', test.admin, {
    query: 'SELECT identifier_type, identifier_hash FROM identity WHERE profile_id = {id:String}',
    params: { id: profileId },
  });
  if (sql.statusCode !== 200) throw new Error(`identity: ${sql.statusCode} ${sql.body}`);
  const rows = sql.json().data as { identifier_type: string; identifier_hash: string }[];
  return {
    profileId,
    identifiers: rows.map((row) => ({ type: row.identifier_type, hash: row.identifier_hash })),
  };
}

/** Files a privacy request and waits until it completes or fails; returns its final view. */
export async function fileAndWait(
  test: ScenarioClient,
  officer: string,
  body: { type: string; identifier: string },
  timeoutMs = 60_000,
) {
  const filed = await call(test, 'POST', '/v1/privacy/requests', officer, body);
  if (filed.statusCode !== 202) throw new Error(`file: ${filed.statusCode} ${filed.body}`);
  return waitForRequest(test, officer, filed.json().id as string, timeoutMs);
}

export async function waitForRequest(
  test: ScenarioClient,
  officer: string,
  requestId: string,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = (await call(test, 'GET', `/v1/privacy/requests/${requestId}`, officer)).json();
    if (view.state === 'completed' || view.state === 'failed' || Date.now() > deadline) return view;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Files under `dir` (relative paths) whose bytes contain any of `needles`, with the needle's index. */
export async function filesContaining(
  dir: string,
  needles: readonly Buffer[],
  skip: (path: string) => boolean = () => false,
): Promise<{ file: string; needle: number }[]> {
  const hits: { file: string; needle: number }[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    const path = join(dir, entry);
    const file = relative(dir, path);
    if (skip(file)) continue;
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    const bytes = await readFile(path).catch(() => undefined);
    if (!bytes) continue;
    needles.forEach((needle, index) => {
      if (bytes.includes(needle)) hits.push({ file, needle: index });
    });
  }
  return hits;
}

/** Ana's plaintext identifiers and her identifier hashes, as text. */
export function anaTexts(identifiers: readonly { type: string; hash: string }[]): string[] {
  return [...Object.values(ANA), ...identifiers.map(({ hash }) => hash)];
}

/** What must not be anywhere after Ana's erasure: her identifiers and their hashes, as text, and the hashes as bytes. */
export function anaNeedles(identifiers: readonly { type: string; hash: string }[]): Buffer[] {
  return [
    ...anaTexts(identifiers).map((text) => Buffer.from(text)),
    ...identifiers.map(({ hash }) => Buffer.from(hash, 'base64url')),
  ];
}

export async function removeDataDir(dataDir: string): Promise<void> {
  await rm(dataDir, { recursive: true, force: true });
}

import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../eventstore/event-store.js';
import { collect } from '../../eventstore/testing/helpers.js';
import { aBatch, aShopper } from '../../fixtures/builders.js';
import {
  BASIC_AUTH,
  openTestIngestApp,
  TEST_WRITE_KEY,
  type TestIngestApp,
} from '../testing/ingest-app.js';
import { trackingRoutes } from './tracking.routes.js';

const json = { 'content-type': 'application/json', authorization: BASIC_AUTH };

describe(trackingRoutes.name, () => {
  let testApp: TestIngestApp;
  let app: FastifyInstance;
  let eventStore: EventStore;

  beforeAll(async () => {
    testApp = await openTestIngestApp();
    ({ app, eventStore } = testApp);
  });
  afterAll(() => testApp.close());

  const postBatch = (payload: string | Buffer | object) =>
    app.inject({ method: 'POST', url: '/v1/batch', headers: json, payload });
  const count = async () => (await collect(eventStore.readAll())).length;
  const ana = aShopper('http-ana')
    .withAccount()
    .withDevice('phone', 'app')
    .withDevice('web')
    .build();
  const at = '2026-03-01T10:00:00.000Z';

  it('takes a batch with the write key as Basic user name, and answers once it is stored', async () => {
    const before = await count();
    const body = aBatch([
      ana.on('web').views('SKU-1', at),
      ana.on('web').logsIn(at),
      ana.on('phone').views('SKU-2', at),
    ]);
    const response = await app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: json,
      payload: body,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ success: true });
    expect((await count()) - before).toBe(3);
  });

  it('takes every single-call endpoint, with writeKey in the body', async () => {
    const calls = {
      track: ana.on('web').views('SKU-3', at),
      page: { anonymousId: 'anon-page', name: 'Home', properties: { path: '/' } },
      screen: { anonymousId: 'anon-screen', name: 'Cart' },
      identify: ana.on('web').logsIn(at),
      alias: ana.on('web').aliases(at),
      group: { userId: 'user-http-ana', groupId: 'company-1', traits: { plan: 'gold' } },
    };
    for (const [type, call] of Object.entries(calls)) {
      const { type: _, ...body } = call as Record<string, unknown>;
      const response = await app.inject({
        method: 'POST',
        url: `/v1/${type}`,
        payload: { ...body, writeKey: TEST_WRITE_KEY },
      });
      expect(response.statusCode, `${type}: ${response.body}`).toBe(200);
    }
  });

  it('refuses missing and unknown write keys with 401', async () => {
    const payload = aBatch([ana.on('web').views('SKU-1', at)]);
    const none = await app.inject({ method: 'POST', url: '/v1/batch', payload });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('TANDEM_ERR_UNAUTHORIZED');
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: `Basic ${Buffer.from('nope:').toString('base64')}` },
      payload,
    });
    expect(wrong.statusCode).toBe(401);
  });

  it('accepts gzip-encoded bodies', async () => {
    const before = await count();
    const body = gzipSync(
      JSON.stringify(aBatch([ana.on('web').views('SKU-7', '2026-03-02T10:00:00Z')])),
    );
    const response = await app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { ...json, 'content-encoding': 'gzip' },
      payload: body,
    });
    expect(response.statusCode, response.body).toBe(200);
    expect((await count()) - before).toBe(1);
  });

  it('stores a message sent twice once (messageId)', async () => {
    const payload = aBatch([ana.on('web').views('SKU-8', '2026-03-03T10:00:00Z')]);
    const before = await count();
    for (let i = 0; i < 2; i++)
      expect(
        (await app.inject({ method: 'POST', url: '/v1/batch', headers: json, payload })).statusCode,
      ).toBe(200);
    expect((await count()) - before).toBe(1);
  });

  it('answers CORS pre-flights so browser pages can send', async () => {
    const response = await app.inject({
      method: 'OPTIONS',
      url: '/v1/batch',
      headers: {
        origin: 'https://shop.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('https://shop.example.com');
  });

  describe('bad input: 400 naming what and where, nothing stored', () => {
    const cases: [string, string | Buffer, RegExp | string[]][] = [
      ['malformed JSON', '{"batch": [', /not acceptable JSON/],
      [
        'wrong types',
        JSON.stringify({
          batch: [{ type: 'track', event: 42, anonymousId: 'a', timestamp: 'soon' }],
        }),
        ['batch.0.event', 'batch.0.timestamp'],
      ],
      [
        'missing ids',
        JSON.stringify({ batch: [{ type: 'track', event: 'x' }] }),
        ['batch.0.userId'],
      ],
      [
        'unknown type',
        JSON.stringify({ batch: [{ type: 'teleport', anonymousId: 'a' }] }),
        ['batch.0.type'],
      ],
      ['an empty batch', JSON.stringify({ batch: [] }), ['batch']],
      [
        'deep nesting',
        `{"batch":[{"type":"track","event":"x","anonymousId":"a","properties":${'{"a":'.repeat(200)}1${'}'.repeat(200)}}]}`,
        /nests \d+ levels deep/,
      ],
      [
        '__proto__ keys',
        '{"batch":[{"type":"track","event":"x","anonymousId":"a","properties":{"__proto__":{"admin":true}}}]}',
        /not acceptable JSON/,
      ],
      [
        'constructor.prototype keys',
        '{"batch":[{"type":"track","event":"x","anonymousId":"a","properties":{"constructor":{"prototype":{"admin":true}}}}]}',
        /not acceptable JSON/,
      ],
      [
        'invalid UTF-8',
        Buffer.concat([
          Buffer.from('{"batch":[{"type":"track","event":"'),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('","anonymousId":"a"}]}'),
        ]),
        /not valid UTF-8/,
      ],
      [
        'huge numbers',
        '{"batch":[{"type":"track","event":"x","anonymousId":"a","properties":{"n":1e400}}]}',
        ['batch.0.properties.n'],
      ],
      [
        'a call over 32 KB',
        JSON.stringify({
          batch: [
            {
              type: 'track',
              event: 'x',
              anonymousId: 'a',
              properties: { blob: 'x'.repeat(33 * 1024) },
            },
          ],
        }),
        /32 KB a call/,
      ],
      [
        'a batch over 500 KB',
        JSON.stringify({
          batch: Array.from({ length: 20 }, () => ({
            type: 'track',
            event: 'x',
            anonymousId: 'a',
            properties: { blob: 'x'.repeat(30 * 1024) },
          })),
        }),
        /500 KB/,
      ],
    ];
    for (const [name, payload, expected] of cases) {
      it(name, async () => {
        const before = await count();
        const response = await postBatch(payload);
        expect(response.statusCode, response.body).toBe(400);
        const error = response.json().error as { message: string; issues?: { path: string }[] };
        if (expected instanceof RegExp) expect(error.message).toMatch(expected);
        else
          expect(error.issues?.map((issue) => issue.path)).toEqual(
            expect.arrayContaining(expected),
          );
        expect(await count()).toBe(before);
      });
    }
  });

  it('answers random bodies with 200 or a 4xx, never a 5xx, and a 4xx stores nothing (fuzz)', async () => {
    const junk = fc.oneof(
      fc.string(),
      fc.json(),
      fc.jsonValue().map((value) => JSON.stringify({ batch: [value] })),
      fc
        .record({
          type: fc.constantFrom('track', 'page', 'identify', 'alias', 'nope'),
          event: fc.jsonValue(),
          userId: fc.jsonValue(),
        })
        .map((call) => JSON.stringify({ batch: [call] })),
      fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
    );
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(junk, async (payload) => {
        const before = await count();
        const response = await postBatch(payload);
        statuses.add(response.statusCode);
        if (response.statusCode === 200) return true;
        return (
          response.statusCode >= 400 && response.statusCode < 500 && (await count()) === before
        );
      }),
      { numRuns: 300 },
    );
    expect(statuses.has(400)).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

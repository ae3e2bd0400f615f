import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { openLmdbEventStore } from '../eventstore/event-store.lmdb.js';
import { openResolver } from '../identity/resolver.js';
import { DEFAULT_IDENTITY_RULES } from '../schemas/identity.js';
import { buildApp } from './app.js';
import { OPENAPI_FILE } from './openapi.js';
import { readinessChecks } from './readiness.js';
import { openTestApi, type TestApi } from './testing/api-app.js';

let api: TestApi;
beforeAll(async () => {
  api = await openTestApi({ sample: false });
});
afterAll(() => api?.close());

it('answers /healthz and /readyz without a key, naming each check', async () => {
  expect((await api.app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({
    status: 'ok',
  });
  const ready = await api.app.inject({ method: 'GET', url: '/readyz' });
  expect(ready.statusCode).toBe(200);
  expect(ready.json()).toEqual({
    status: 'ready',
    checks: [
      { name: 'event_store', ok: true },
      { name: 'warehouse', ok: true },
    ],
  });
});

it('answers /readyz 503 with the reason when a store does not answer', async () => {
  const closed = await openLmdbEventStore({ path: `${api.sample.dir}/closed-log` });
  await closed.close();
  const app = await buildApp({
    ingestor: api.sample.ingestor,
    writeKeys: api.keys.writeKeys,
    metrics: new Registry(),
    readiness: () => readinessChecks({ eventStore: closed, warehouse: api.warehouse }),
  });
  const response = await app.inject({ method: 'GET', url: '/readyz' });
  expect(response.statusCode).toBe(503);
  const body = response.json();
  expect(body.status).toBe('not_ready');
  expect(body.checks[0]).toMatchObject({ name: 'event_store', ok: false });
  expect(body.checks[0].detail).toMatch(/closed/);
  await app.close();
});

it('answers /readyz 503 saying how far behind the profiles are when the resolver lags the log by over a minute', async () => {
  const eventStore = await openLmdbEventStore({ path: `${api.sample.dir}/lagging-log` });
  const resolver = await openResolver({ eventStore, rules: DEFAULT_IDENTITY_RULES });
  const app = await buildApp({
    ingestor: api.sample.ingestor,
    writeKeys: api.keys.writeKeys,
    metrics: new Registry(),
    readiness: () => readinessChecks({ eventStore, resolver }),
  });
  const identityLag = async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    const body = response.json() as { checks: { name: string }[] };
    return {
      status: response.statusCode,
      check: body.checks.find((c) => c.name === 'identity_lag'),
    };
  };
  try {
    await eventStore.append('anon-1', [{ id: randomUUID(), type: 'track', data: {} }]);
    vi.setSystemTime(Date.now() + 90_000);
    expect(await identityLag()).toEqual({
      status: 503,
      check: {
        name: 'identity_lag',
        ok: false,
        detail: 'the profiles are 90 s behind the log (ready under 60 s)',
      },
    });
    vi.useRealTimers();
    await resolver.catchUp();
    expect(await identityLag()).toEqual({ status: 200, check: { name: 'identity_lag', ok: true } });
    expect(await resolver.lag()).toEqual({ events: 0, seconds: 0 });
  } finally {
    vi.useRealTimers();
    await app.close();
    await eventStore.close();
  }
});

it('serves its OpenAPI document at /docs/json, the one checked in, and Swagger UI at /docs', async () => {
  const served = await api.app.inject({ method: 'GET', url: '/docs/json' });
  expect(served.statusCode).toBe(200);
  expect(served.json()).toEqual(JSON.parse(await readFile(OPENAPI_FILE, 'utf8')));
  const ui = await api.app.inject({ method: 'GET', url: '/docs/' });
  expect(ui.statusCode).toBe(200);
  expect(ui.headers['content-type']).toContain('text/html');
});

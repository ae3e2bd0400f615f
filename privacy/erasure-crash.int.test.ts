/**
 * Erasure survives a crash: the process stops right after Ana's data keys
 * are destroyed, before ClickHouse is cleaned; the platform starts again on
 * the same data directory and the request completes from where it stood.
 * (Its own file: chDB runs one data directory per process.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  ANA,
  anaNeedles,
  call,
  filesContaining,
  ingestScenario,
  keyWithRole,
  personInWarehouse,
  removeDataDir,
  type ScenarioPlatform,
  startScenarioPlatform,
  waitForRequest,
} from './testing/erasure-scenario.js';

let test: ScenarioPlatform | undefined;

afterAll(async () => {
  await test?.stop();
  if (test) await removeDataDir(test.dataDir);
});

describe('erasure after a crash', () => {
  it('completes after a restart when the process died between the keys and ClickHouse', async () => {
    test = await startScenarioPlatform({ privacyCrashAfter: 'destroy_keys' });
    await ingestScenario(test);
    await test.settle();
    const officer = await keyWithRole(test, 'privacy_officer');
    const ana = await personInWarehouse(test, ANA.email);

    const filed = await call(test, 'POST', '/v1/privacy/requests', officer, {
      type: 'erasure',
      identifier: `email:${ANA.email}`,
    });
    expect(filed.statusCode, filed.body).toBe(202);
    const requestId = filed.json().id as string;
    // The runner stops after destroying the keys: the request stays running, her rows stay in ClickHouse.
    let stalled = await waitForRequest(test, officer, requestId, 3000);
    for (let i = 0; i < 100 && stalled.steps.at(-1)?.step !== 'destroy_keys'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      stalled = (await call(test, 'GET', `/v1/privacy/requests/${requestId}`, officer)).json();
    }
    expect(stalled.state).toBe('running');
    expect(stalled.steps.map((step: { step: string }) => step.step)).toEqual([
      'resolve',
      'suppress',
      'destroy_keys',
    ]);
    expect((await call(test, 'GET', `/v1/profiles/${ana.profileId}`, test.admin)).statusCode).toBe(
      200,
    );

    const { dataDir } = test;
    await test.stop();
    test = await startScenarioPlatform({ dataDir });
    const done = await waitForRequest(test, officer, requestId, 60_000);
    expect(done.state, JSON.stringify(done)).toBe('completed');
    expect(done.steps.map((step: { step: string }) => step.step)).toEqual([
      'resolve',
      'suppress',
      'destroy_keys',
      'await_projection',
      'delete_warehouse',
      'delete_streams',
      'verify',
      'complete',
    ]);
    expect((await call(test, 'GET', `/v1/profiles/${ana.profileId}`, test.admin)).statusCode).toBe(
      404,
    );
    const deadline = Date.now() + 120_000;
    let hits = await filesContaining(dataDir, anaNeedles(ana.identifiers), (file) =>
      file.startsWith('suppression'),
    );
    while (hits.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      hits = await filesContaining(dataDir, anaNeedles(ana.identifiers), (file) =>
        file.startsWith('suppression'),
      );
    }
    expect(hits).toEqual([]);
  }, 240_000);
});

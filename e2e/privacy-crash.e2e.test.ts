/**
 * Erasure survives a crash: `tandem start` is killed (SIGKILL, by the
 * failpoint `TANDEM_FAULT_KILL_AFTER=privacy:destroy_keys`) right after the
 * person's data keys are destroyed, before ClickHouse is cleaned; started
 * again on the same data directory, it finishes the request from where it
 * stood, and the person is gone from every file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ANA,
  anaNeedles,
  BOB,
  call,
  filesContaining,
  httpClient,
  ingestScenario,
  keyWithRole,
  personInWarehouse,
  waitForRequest,
} from '../privacy/testing/erasure-scenario.js';
import { startTandem, type TandemProcess } from './testing/tandem-process.js';

let dataDir: string | undefined;
const running: TandemProcess[] = [];

afterAll(async () => {
  for (const tandem of running) tandem.child.kill('SIGKILL');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('erasure and a crash', () => {
  it('completes after a restart when the process was killed between the keys and ClickHouse', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tandem-e2e-erasure-'));
    const env = {
      ...process.env,
      TANDEM_DATA_DIR: dataDir,
      TANDEM_LOG_FORMAT: 'json',
      TANDEM_LOG_LEVEL: 'info',
      TANDEM_PORT: '0',
    } as NodeJS.ProcessEnv;
    const first = await startTandem({ ...env, TANDEM_FAULT_KILL_AFTER: 'privacy:destroy_keys' });
    running.push(first);
    const { address, localAdminKey, localWriteKey } = first.running;
    let test = httpClient(address, String(localAdminKey), String(localWriteKey));
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
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });

    // Started again without the failpoint: the keys and secrets on disk are the same.
    const second = await startTandem(env);
    running.push(second);
    test = httpClient(second.running.address, String(localAdminKey), String(localWriteKey));
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
    expect(done.report['clickhouse.events']).toBeGreaterThan(0);
    expect((await call(test, 'GET', `/v1/profiles/${ana.profileId}`, test.admin)).statusCode).toBe(
      404,
    );
    const bob = await call(
      test,
      'GET',
      `/v1/profiles?identifier=${encodeURIComponent(`email:${BOB.email}`)}`,
      test.admin,
    );
    expect(bob.statusCode).toBe(200);

    const stillThere = () =>
      filesContaining(String(dataDir), anaNeedles(ana.identifiers), (file) =>
        file.startsWith('suppression'),
      );
    const deadline = Date.now() + 120_000;
    let hits = await stillThere();
    while (hits.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      hits = await stillThere();
    }
    expect(hits).toEqual([]);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  }, 240_000);
});

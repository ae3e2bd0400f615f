/**
 * The `tandem` command as a user runs it: a real process, real files in a
 * temp data directory, signals to stop it.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI, startTandem } from './testing/tandem-process.js';

const cli = CLI;
const run = promisify(execFile);

describe('tandem CLI', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tandem-e2e-'));
    env = {
      ...process.env,
      TANDEM_DATA_DIR: dataDir,
      TANDEM_LOG_FORMAT: 'json',
      TANDEM_LOG_LEVEL: 'debug',
      TANDEM_PORT: '0',
    };
  });
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  const tandem = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', cli, ...args], { env });

  /** Starts `tandem start` and resolves once it logs that it runs, with its parsed log lines. */
  async function startPlatform(...args: string[]) {
    const platform = await startTandem(env, ...args);
    children.push(platform.child);
    return { ...platform, exited: platform.exited.then(({ code }) => code) };
  }

  it('serves the tracking API: a batch posted with the generated write key lands in the log', async () => {
    const platform = await startPlatform();
    const running = platform.lines.find((line) =>
      String(line.msg).startsWith('Tandem is running'),
    ) as { address: string; localWriteKey: string };
    expect(running.localWriteKey).toMatch(/^wk_/);
    expect((await fetch(`${running.address}/healthz`)).status).toBe(200);
    const response = await fetch(`${running.address}/v1/batch`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${running.localWriteKey}:`).toString('base64')}`,
      },
      body: JSON.stringify({
        batch: [
          {
            type: 'track',
            event: 'Product Viewed',
            anonymousId: 'e2e-device',
            properties: { sku: 'SKU-1' },
          },
        ],
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ success: true });
    const unauthorised = await fetch(`${running.address}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(unauthorised.status).toBeGreaterThanOrEqual(400);
    const metrics = await (await fetch(`${running.address}/metrics`)).text();
    expect(metrics).toMatch(/^tandem_ingest_events_accepted_total\{source="web"\} 1$/m);
    // Node's own, under the names dashboards expect; how far the resolver and the projector are behind.
    for (const name of [
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'tandem_chdb_memory_bytes\\{what="tracked"\\}',
      'tandem_resolver_lag_events',
      'tandem_resolver_lag_seconds',
      'tandem_projector_lag_events',
      'tandem_projector_lag_seconds',
    ])
      expect(metrics).toMatch(new RegExp(`^${name} \\d`, 'm'));
    platform.child.kill('SIGTERM');
    expect(await platform.exited).toBe(0);
    const { stdout } = await tandem('log', 'read');
    const tracked = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; data: { data?: { event?: string } } })
      .filter((event) => event.type === 'track');
    expect(tracked.map((event) => event.data.data?.event)).toEqual(['Product Viewed']);
    expect(stdout).not.toContain('e2e-device');
  });

  it('makes, uses and revokes API keys from the command line while the server runs', async () => {
    const platform = await startPlatform();
    const running = platform.lines.find((line) =>
      String(line.msg).startsWith('Tandem is running'),
    ) as { address: string; localAdminKey: string };
    expect(running.localAdminKey).toMatch(/^adm_/);
    const created = await tandem('keys', 'create', '--role', 'analyst', '--name', 'BI team');
    const token = /token \(shown once, keep it secret\): (\S+)/.exec(created.stdout)?.[1] as string;
    const keyId = /^(key_[0-9a-z]{12})/.exec(created.stdout)?.[1] as string;
    expect(token).toMatch(/^tdm_key_/);
    const sql = () =>
      fetch(`${running.address}/v1/sql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: 'SELECT count() AS n FROM events' }),
      });
    const until = async (status: number) => {
      for (let tries = 0; tries < 50; tries++) {
        const response = await sql();
        if (response.status === status) return response;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`the server never answered ${status}`);
    };
    const answered = (await (await until(200)).json()) as { data: unknown[] };
    expect(answered.data).toHaveLength(1);
    await tandem('keys', 'revoke', keyId);
    await until(401);
    const { stdout } = await tandem('keys', 'list', '--json');
    expect(JSON.parse(stdout)).toEqual([
      expect.objectContaining({ keyId, name: 'BI team', revokedBy: 'cli' }),
    ]);
    expect(stdout).not.toContain(token.slice(-43));
    platform.child.kill('SIGTERM');
    expect(await platform.exited).toBe(0);
  });

  it('refuses a second process on the same embedded warehouse, saying which parts can run beside it', async () => {
    const platform = await startPlatform();
    const second = await tandem('start').then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('in use by another Tandem process');
    expect(second.stderr).toContain('--parts ingest');
    platform.child.kill('SIGTERM');
    expect(await platform.exited).toBe(0);
  });

  it('resolves identity while it runs: identity show explains a profile, unlink splits it, replay --identity rebuilds the same graph', async () => {
    const platform = await startPlatform();
    const running = platform.lines.find((line) =>
      String(line.msg).startsWith('Tandem is running'),
    ) as { address: string; localWriteKey: string };
    const login = {
      type: 'identify',
      anonymousId: 'e2e-laptop',
      userId: 'e2e-user',
      traits: { email: 'Ana.E2E@Example.com', plan: 'gold' },
    };
    const response = await fetch(`${running.address}/v1/batch`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${running.localWriteKey}:`).toString('base64')}`,
      },
      body: JSON.stringify({ batch: [login] }),
    });
    expect(response.status).toBe(200);
    platform.child.kill('SIGTERM');
    expect(await platform.exited).toBe(0);

    const shown = (await tandem('identity', 'show', 'email:ana.e2e@example.com')).stdout;
    expect(shown).toMatch(/^prf_0\nidentifiers: user_id:\S+, email:\S+, anonymous_id:\S+\n/);
    expect(shown).toContain('traits: {"plan":"gold"}');
    expect(shown).toMatch(
      /prf_0 created with user_id:\S+, email:\S+, anonymous_id:\S+: first seen together/,
    );
    expect(shown).not.toContain('ana.e2e');

    await tandem(
      'identity',
      'unlink',
      'user_id:e2e-user',
      'anonymous_id:e2e-laptop',
      '--reason',
      'shared laptop',
    );
    const replayed = (await tandem('replay', '--identity')).stdout;
    expect(replayed).toMatch(/^replayed 2 facts in [\d.]+ s: 2 profiles, 3 identifiers/);
    expect(replayed).toContain('DIFFERENT from the graph it replaces');
    expect((await tandem('replay', '--identity')).stdout).toContain(
      'equal to the graph it replaces',
    );
    const device = (await tandem('identity', 'show', 'anonymous_id:e2e-laptop')).stdout;
    expect(device).toMatch(/^prf_1\nidentifiers: anonymous_id:\S+\n/);
    expect(device).toContain('split from prf_0');
    await expect(tandem('identity', 'show', 'email:nobody@example.com')).rejects.toMatchObject({
      stderr: expect.stringContaining('tandem: no profile has email:nobody@example.com\n'),
    });
  });

  it('import loads a generated POS file into the log, and refuses a bad one in strict mode', async () => {
    const out = join(dataDir, 'gen-import');
    await tandem(
      'generate',
      '--shoppers',
      '40',
      '--stores',
      '2',
      '--days',
      '20',
      '--seed',
      '3',
      '--out',
      out,
    );
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
      counts: { receipts: number };
    };
    const { stdout } = await tandem('import', join(out, 'pos', 'receipts.csv'));
    expect(JSON.parse(stdout)).toMatchObject({
      mode: 'strict',
      accepted: manifest.counts.receipts,
      rejected: 0,
    });
    const log = (await tandem('log', 'read')).stdout.trim().split('\n');
    expect(log.filter((line) => line.includes('"type":"pos.receipt"'))).toHaveLength(
      manifest.counts.receipts,
    );

    const bad = join(dataDir, 'bad.ndjson');
    await writeFile(bad, '{"receiptId":"x"}\n');
    const failure = await tandem('import', bad).then(
      () => undefined,
      (error: { code: number; stdout: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(JSON.parse(failure?.stdout ?? '{}')).toMatchObject({
      accepted: 0,
      rejected: 1,
      errors: expect.arrayContaining([expect.objectContaining({ line: 1, path: 'storeId' })]),
    });
  });

  it('prints its version and help', async () => {
    const manifest = JSON.parse(
      await readFile(new URL('../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    expect((await tandem('--version')).stdout.trim()).toBe(manifest.version);
    const help = (await tandem('--help')).stdout;
    for (const command of ['start', 'serve', 'log', 'generate', 'bench'])
      expect(help).toContain(command);
  });

  it('start runs on the embedded store, logs appends by other processes, and stops cleanly on SIGTERM', async () => {
    const first = await startPlatform();
    expect(first.lines.at(-1)).toMatchObject({ eventStore: 'lmdb', dataDir });

    // A second ingest process on the same files (the embedded warehouse has
    // room for one projector): the first one sees its start in the log.
    const second = await startPlatform('--parts', 'ingest');
    // Generous: the wake-up is a file watch, and CI machines can be slow to deliver it.
    await expect
      .poll(
        () =>
          first.lines.some(
            (line) => line.msg === 'event appended' && line.type === 'system.started',
          ),
        { timeout: 10_000 },
      )
      .toBe(true);

    second.child.kill('SIGTERM');
    first.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(await first.exited).toBe(0);

    const { stdout } = await tandem('log', 'read', '--stream', 'tandem-system');
    const types = stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { type: string }).type);
    expect(types.sort()).toEqual([
      'system.started',
      'system.started',
      'system.stopped',
      'system.stopped',
    ]);
  });

  it('log read prints the whole log as NDJSON with checkpoint positions, newest first when asked', async () => {
    const platform = await startPlatform();
    platform.child.kill('SIGTERM');
    await platform.exited;
    const { stdout } = await tandem('log', 'read', '--backwards', '--limit', '1');
    const [newest] = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(newest).toMatchObject({
      stream: 'tandem-system',
      type: 'system.stopped',
      position: '2/2',
      revision: 1,
    });
  });

  it('stops at start-up on a bad setting, naming the variable (exit code 78)', async () => {
    env.TANDEM_LOG_LEVEL = 'chatty';
    const failure = await tandem('start').then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(78);
    expect(failure?.stderr).toMatch(/TANDEM_LOG_LEVEL: .*\(got "chatty"\)/);
  });

  it('refuses server mode without the shared secrets, before writing any: every process must seal and hash alike', async () => {
    env.TANDEM_EVENTSTORE_URL = 'kurrentdb://127.0.0.1:1?tls=false';
    const failure = await tandem('serve', '--parts', 'ingest').then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(78);
    expect(failure?.stderr).toMatch(/TANDEM_MASTER_KEY: must be set when TANDEM_EVENTSTORE_URL is/);
    expect(failure?.stderr).toMatch(/TANDEM_HASH_SECRET: must be set/);
    await expect(readFile(join(dataDir, 'secrets', 'master.key'))).rejects.toThrow();
  });

  it('refuses a malformed checkpoint with a clear message', async () => {
    const failure = await tandem('log', 'read', '--from', 'yesterday').then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain('not a log position: "yesterday"');
  });

  it('generate writes a dataset and reports its counts; the same seed gives the same files', async () => {
    const out = join(dataDir, 'gen');
    const generate = (into: string) =>
      tandem(
        'generate',
        ...['--shoppers', '60', '--stores', '3', '--days', '20', '--seed', '5'],
        '--out',
        into,
      );
    const { stdout } = await generate(out);
    expect(stdout).toMatch(/shoppers 60 in \d+ households; 3 stores; 2000 products/);
    expect(stdout).toMatch(/POS receipts \d+ with \d+ lines/);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
      counts: { batches: number };
    };
    const clickstream = await readFile(join(out, 'clickstream.ndjson'), 'utf8');
    expect(clickstream.trimEnd().split('\n')).toHaveLength(manifest.counts.batches);

    await generate(join(dataDir, 'again'));
    expect(await readFile(join(dataDir, 'again', 'clickstream.ndjson'), 'utf8')).toBe(clickstream);
    await expect(tandem('generate', '--shoppers', 'many', '--out', out)).rejects.toMatchObject({
      stderr: expect.stringContaining('--shoppers must be a non-negative integer'),
    });
  });

  it('runs a benchmark at a small scale and prints its table with ratios', async () => {
    const { stdout } = await tandem('bench', 'eventstore', '--scale', '0.01');
    for (const row of [
      'append, batch 1 ',
      'append, batch 100 ',
      'append, batch 1000 ',
      'readAll, whole log',
    ]) {
      expect(stdout).toMatch(new RegExp(`${row}.*events/s.*events/s\\s+\\d+\\.\\d\\d`));
    }
    expect(stdout).toMatch(
      /target append, batch 1000 .*: ratio >= 0.6 and >= 150,000 events\/s — (met|NOT met)/,
    );
  });

  it('lists the benchmarks and refuses an unknown one', async () => {
    expect((await tandem('bench')).stdout).toMatch(/eventstore\s+append/);
    await expect(tandem('bench', 'eventstore', '--scale', 'lots')).rejects.toMatchObject({
      stderr: expect.stringContaining('--scale must be a number'),
    });
    await expect(tandem('bench', 'nosuch')).rejects.toMatchObject({
      stderr: expect.stringContaining('unknown benchmark: nosuch'),
    });
  });
});

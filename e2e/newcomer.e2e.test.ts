/**
 * A newcomer's first minutes: a clean copy of the repository, `npm install`,
 * `npm start` (a small demo), and the five commands it prints, pasted into a
 * shell as they are.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const MINUTES = 60_000;

const missing = await Promise.all(
  ['git', 'curl', 'bash'].map((tool) =>
    run(tool, ['--version']).then(
      () => undefined,
      () => tool,
    ),
  ),
).then((tools) => tools.filter((tool) => tool !== undefined));

describe.skipIf(missing.length > 0)(
  `a newcomer's npm install && npm start${missing.length > 0 ? ` (skipped: ${missing.join(', ')} not installed)` : ''}`,
  () => {
    let copy: string | undefined;
    let platform: ChildProcess | undefined;
    const stderr: string[] = [];
    afterAll(async () => {
      // A failed run leaves the server up: stop it (npm's child first, then npm).
      if (platform && platform.exitCode === null) {
        const running = /"pid":(\d+),[^\n]*"msg":"Tandem is running/.exec(stderr.join(''));
        if (running) process.kill(Number(running[1]), 'SIGKILL');
        platform.kill('SIGKILL');
      }
      if (copy) await rm(copy, { recursive: true, force: true });
    });

    it(
      'reaches ready, the five printed commands each succeed, and a second start reuses the data',
      async () => {
        copy = await cleanCopy();
        await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], {
          cwd: copy,
          maxBuffer: 64 * 1024 * 1024,
        });
        /** Starts `command` in the copy; resolves with the lines it prints once the demo is ready. */
        const start = (command: string, ...args: string[]) => {
          const child = spawn(command, args, {
            cwd: copy,
            env: { ...process.env, TANDEM_LOG_FORMAT: 'json', TANDEM_LOG_LEVEL: 'info' },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          platform = child;
          child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
          return { child, printed: banner(child, () => stderr.join('')) };
        };
        const { child, printed: ready } = start(
          'npm',
          'start',
          '--',
          '--shoppers',
          '600',
          '--port',
          '0',
        );
        const printed = await ready;

        const exports = printed.filter((line) => line.startsWith('  export ')).join('\n');
        const commands = printed.filter((line) => line.startsWith('curl '));
        expect(commands).toHaveLength(5);
        const address = /export TANDEM=(\S+)/.exec(exports)?.[1];
        expect((await fetch(`${address}/readyz`)).status).toBe(200);

        const outputs: string[] = [];
        for (const command of commands) {
          const { stdout } = await run('bash', ['-c', `${exports}\n${command}`]);
          expect(stdout, command).not.toMatch(/"success":\s*false/);
          outputs.push(stdout);
        }
        const [preview, members, recommendations, sql, erasure] = outputs as [
          string,
          string,
          string,
          string,
          string,
        ];
        expect(JSON.parse(preview).size).toBeGreaterThan(0);
        expect(members.split('\n')[0]).toBe('"profile_id","consented_at"');
        expect(JSON.parse(recommendations)).toMatchObject({ personalized: true });
        expect(JSON.parse(recommendations).items.length).toBeGreaterThan(0);
        expect(JSON.parse(sql).data.map((row: { channel: string }) => row.channel)).toEqual([
          'offline',
          'online',
        ]);
        expect(JSON.parse(erasure)).toMatchObject({ type: 'erasure', state: 'received' });

        // npm start runs node in a child: stop that one as an orchestrator would; npm passes on its exit code.
        const exited = new Promise((resolve) => child.on('exit', resolve));
        process.kill(tandemPid(stderr.join('')), 'SIGTERM');
        expect(await exited).toBe(0);
        expect(stderr.join('')).toContain('"msg":"stopped"');

        // A second start finds the demo in the log: no load, the same segment, ready at once.
        stderr.length = 0;
        const started = performance.now();
        const { child: again, printed: reready } = start(
          process.execPath,
          'dist/cli/main.js',
          'demo',
          '--port',
          '0',
        );
        const reprinted = await reready;
        expect(performance.now() - started).toBeLessThan(30_000);
        expect(stderr.join('')).not.toContain('demo: started a stage');
        expect(reprinted.filter((line) => line.startsWith('curl ')).slice(0, 2)).toEqual(
          commands.slice(0, 2),
        );
        const stopped = new Promise((resolve) => again.on('exit', resolve));
        again.kill('SIGTERM');
        expect(await stopped).toBe(0);
        platform = undefined;
      },
      15 * MINUTES,
    );
  },
);

/** The repository's files as a clone would have them (tracked and new, never ignored), in a temp dir. */
async function cleanCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-newcomer-'));
  const { stdout } = await run(
    'git',
    ['ls-files', '--cached', '--others', '--exclude-standard', '-z'],
    { cwd: REPO, maxBuffer: 64 * 1024 * 1024 },
  );
  for (const file of stdout.split('\0').filter((name) => name.length > 0)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await copyFile(join(REPO, file), join(dir, file)).catch((error: NodeJS.ErrnoException) => {
      // A file deleted in the working tree but not yet in git: a clone would not have it either.
      if (error.code !== 'ENOENT') throw error;
    });
  }
  return dir;
}

/** The pid of the `tandem` process, from its `Tandem is running` log line. */
function tandemPid(log: string): number {
  const running = log.split('\n').find((line) => line.includes('"msg":"Tandem is running'));
  if (!running) throw new Error(`tandem never logged that it runs:\n${log.slice(-4000)}`);
  return (JSON.parse(running) as { pid: number }).pid;
}

/** Resolves with the lines `npm start` prints once the demo is ready; rejects if it exits first. */
function banner(child: ChildProcess, log: () => string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n').slice(0, -1);
      if (lines.filter((line) => line.startsWith('curl ')).length === 5) resolve(lines);
    });
    child.on('exit', (code) =>
      reject(new Error(`npm start exited with ${code}:\n${out}\n${log().slice(-4000)}`)),
    );
  });
}

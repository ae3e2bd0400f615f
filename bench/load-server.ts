/**
 * The server side of the load benchmark: `tandem demo` as a real child
 * process (the command `npm start` runs), its logs in files, its memory and
 * CPU read from /proc, and a SIGTERM at the end that must stop it cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export interface DemoServerOptions {
  readonly dataDir: string;
  /** Where the child's stderr (JSON log lines) and stdout (the banner) go. */
  readonly stderrPath: string;
  readonly stdoutPath: string;
  readonly demo: {
    readonly shoppers: number;
    readonly stores: number;
    readonly days: number;
    readonly seed: number;
  };
  /** Added to the environment, after every inherited TANDEM_* variable is removed. */
  readonly env: Readonly<Record<string, string>>;
  /** How long the demo may take to load and become ready. */
  readonly readyTimeoutMs: number;
  /** Extra flags for the child's node, e.g. `--trace-gc` (its output lands in the stdout file). */
  readonly nodeArgs?: readonly string[];
}

export interface DemoServer {
  readonly address: string;
  readonly pid: number;
  /** From the spawn to `/readyz` answering 200. */
  readonly setupSeconds: number;
  /** SIGTERM, then waits (SIGKILL after `timeoutMs`) and says how it ended. */
  stop(timeoutMs: number): Promise<ServerExit>;
}

export interface ServerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly seconds: number;
  /** Whether it had to be killed after the timeout. */
  readonly killed: boolean;
}

/**
 * Spawns `node dist/cli/main.js demo --port 0` on an empty data directory and
 * waits until `/readyz` answers 200 (the demo chain loaded and projected).
 * stderr and stdout go straight to files, never through a pipe this process
 * must drain: a busy load generator must not stall the server's logging.
 */
export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const started = performance.now();
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const { shoppers, stores, days, seed } = options.demo;
  const stderr = openSync(options.stderrPath, 'w');
  const stdout = openSync(options.stdoutPath, 'w');
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('TANDEM_')),
  );
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [
        ...(options.nodeArgs ?? []),
        cli,
        'demo',
        ...['--shoppers', String(shoppers), '--stores', String(stores)],
        ...['--days', String(days), '--seed', String(seed)],
        ...['--data-dir', options.dataDir, '--port', '0', '--host', '127.0.0.1'],
      ],
      { env: { ...env, ...options.env }, stdio: ['ignore', stdout, stderr] },
    );
  } finally {
    closeSync(stderr);
    closeSync(stdout);
  }
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  const pid = child.pid as number;
  try {
    const deadline = started + options.readyTimeoutMs;
    let address: string | undefined;
    while (!address) {
      if (exit) throw new Error(`tandem demo exited (${describe(exit)}) before it listened`);
      if (performance.now() > deadline) throw new Error('tandem demo did not listen in time');
      address = (await readLogLines(options.stderrPath)).find(
        (line) =>
          typeof line.address === 'string' && String(line.msg).startsWith('Tandem is running'),
      )?.address as string | undefined;
      if (!address) await sleep(200);
    }
    while (!(await answers(`${address}/readyz`))) {
      if (exit) throw new Error(`tandem demo exited (${describe(exit)}) before it was ready`);
      if (performance.now() > deadline)
        throw new Error(`tandem demo was not ready within ${options.readyTimeoutMs / 1000} s`);
      await sleep(500);
    }
    const ready = address;
    return {
      address: ready,
      pid,
      setupSeconds: (performance.now() - started) / 1000,
      stop: async (timeoutMs) => {
        const stopping = performance.now();
        if (!exit) child.kill('SIGTERM');
        const inTime = await Promise.race([
          exited.then(() => true),
          sleep(timeoutMs, false, { ref: false }),
        ]);
        if (!inTime) {
          child.kill('SIGKILL');
          await exited;
        }
        const ended = exit as { code: number | null; signal: NodeJS.Signals | null };
        return { ...ended, seconds: (performance.now() - stopping) / 1000, killed: !inTime };
      },
    };
  } catch (error) {
    if (!exit) {
      child.kill('SIGKILL');
      await exited;
    }
    const tail = (await readFile(options.stderrPath, 'utf8').catch(() => ''))
      .trimEnd()
      .split('\n')
      .slice(-10)
      .join('\n');
    throw new Error(`${(error as Error).message}; the end of its log:\n${tail}`);
  }
}

function describe(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/** The JSON log lines of a file written so far; a line that is not JSON comes back as `{ text }`. */
export async function readLogLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      try {
        const parsed: unknown = JSON.parse(line);
        return typeof parsed === 'object' && parsed !== null
          ? (parsed as Record<string, unknown>)
          : { text: line };
      } catch {
        return { text: line };
      }
    });
}

/** Resident memory of a process in MB (/proc/PID/status): all of it, and the anonymous part (heaps) without mapped files such as LMDB's; undefined where there is no /proc. */
export function residentMb(pid: number): { rss: number; anon: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1]);
    const rss = kb('VmRSS');
    return Number.isFinite(rss) ? { rss: rss / 1024, anon: kb('RssAnon') / 1024 } : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds a process has used, user and system (/proc/PID/stat, in clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which sits in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** A sample of the server's memory, `at` seconds since the mixed load began (negative before). */
export interface RssSample {
  readonly at: number;
  /** VmRSS, MB. */
  readonly mb: number;
  /** RssAnon, MB: the part that is not mapped files. */
  readonly anonMb: number;
}

/** Samples the RSS of `pid` every `everyMs` until stopped. */
export function sampleRss(pid: number, origin: () => number, everyMs: number) {
  const samples: RssSample[] = [];
  const take = () => {
    const resident = residentMb(pid);
    if (resident)
      samples.push({
        at: (performance.now() - origin()) / 1000,
        mb: resident.rss,
        anonMb: resident.anon,
      });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop: () => {
      clearInterval(timer);
      take();
    },
  };
}

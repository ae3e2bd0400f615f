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
  readonly dataDir: string;
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
      dataDir: options.dataDir,
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

/**
 * Resident memory of a process in MB, from /proc/PID/smaps: all of it, its
 * anonymous part (heaps), and the pages of files mapped from `dataDir` —
 * LMDB maps its files, so every page of the log the process has read or
 * written counts in its RSS: the kernel's page cache of the data, clean and
 * given back under memory pressure. Undefined where there is no /proc.
 */
export function residentMb(
  pid: number,
  dataDir: string,
): { rss: number; anon: number; dataMaps: number } | undefined {
  let smaps: string;
  try {
    smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  let rss = 0;
  let anon = 0;
  let dataMaps = 0;
  let inDataDir = false;
  for (const line of smaps.split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping) {
      inDataDir = (mapping[1] ?? '').startsWith(dataDir);
      continue;
    }
    const field = /^(Rss|Anonymous):\s+(\d+) kB$/.exec(line);
    if (!field) continue;
    const kb = Number(field[2]);
    if (field[1] === 'Anonymous') anon += kb;
    else {
      rss += kb;
      if (inDataDir) dataMaps += kb;
    }
  }
  return { rss: rss / 1024, anon: anon / 1024, dataMaps: dataMaps / 1024 };
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
  /** Anonymous memory, MB: the heaps, without any mapped file. */
  readonly anonMb: number;
  /** MB of the data directory's files mapped in (the LMDB stores' pages): page cache, growing with the data. */
  readonly dataMapsMb: number;
  /** VmRSS without the data directory's maps, MB: the memory the process holds itself. */
  readonly heldMb: number;
}

/** Samples the RSS of `pid`, whose data directory is `dataDir`, every `everyMs` until stopped. */
export function sampleRss(pid: number, dataDir: string, origin: () => number, everyMs: number) {
  const samples: RssSample[] = [];
  const take = () => {
    const resident = residentMb(pid, dataDir);
    if (resident)
      samples.push({
        at: (performance.now() - origin()) / 1000,
        mb: resident.rss,
        anonMb: resident.anon,
        dataMapsMb: resident.dataMaps,
        heldMb: resident.rss - resident.dataMaps,
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

/**
 * `tandem` as a user runs it: a real process (cli/main.ts through tsx) on a
 * data directory, its JSON log lines parsed as they come.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

export interface TandemProcess {
  readonly child: ChildProcess;
  /** Every log line so far, parsed. */
  readonly lines: Record<string, unknown>[];
  /** Resolves with the exit code and signal once the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The `Tandem is running` line: address, and the local keys on a first start. */
  readonly running: {
    readonly address: string;
    readonly localWriteKey?: string;
    readonly localAdminKey?: string;
  };
}

/** Starts `tandem start ARGS` with `env` (its log level `info` or finer); resolves once it logs that it runs. */
export async function startTandem(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<TandemProcess> {
  if (['warn', 'error', 'fatal', 'silent'].includes(String(env.TANDEM_LOG_LEVEL)))
    throw new Error(
      'startTandem waits for the `Tandem is running` info line: log at info or finer',
    );
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const reader = createInterface({ input: child.stderr });
  const running = await new Promise<TandemProcess['running']>((resolve, reject) => {
    reader.on('line', (line) => {
      if (!line.startsWith('{')) {
        reject(new Error(`tandem start wrote a line that is not a JSON log entry: ${line}`));
        return;
      }
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (String(entry.msg).startsWith('Tandem is running'))
        resolve(entry as unknown as TandemProcess['running']);
    });
    void exited.then(({ code }) =>
      reject(new Error(`tandem start exited with ${code}: ${JSON.stringify(lines)}`)),
    );
  });
  return { child, lines, exited, running };
}

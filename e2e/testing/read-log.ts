/**
 * The event log as a user sees it from outside: `tandem log read`, one JSON
 * event a line, streamed (a large log never sits in memory as text).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI } from './tandem-process.js';

/** One event as `tandem log read` prints it. */
export interface LoggedEvent {
  readonly id: string;
  readonly stream: string;
  readonly type: string;
  readonly position: string;
  /** The envelope (`data.data` holds the fact's readable fields). */
  readonly data: Record<string, unknown>;
}

/** Runs `tandem log read ARGS` with `env`, calling `visit` for each event in log order. */
export async function readLog(
  env: NodeJS.ProcessEnv,
  visit: (event: LoggedEvent) => void,
  ...args: string[]
): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'log', 'read', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.length > 0) visit(JSON.parse(line) as LoggedEvent);
  }
  const code = await exited;
  if (code !== 0) throw new Error(`tandem log read exited with ${code}: ${stderr}`);
}

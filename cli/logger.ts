import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from '../schemas/config.js';

/** The process logger: JSON lines by default, human-readable on a terminal. */
export function createLogger(
  config: Config['log'],
  destination: NodeJS.WriteStream & { fd: number } = process.stderr,
): Logger {
  const format = config.format ?? (destination.isTTY ? 'pretty' : 'json');
  const options = { level: config.level, base: { pid: process.pid }, name: 'tandem' };
  if (format === 'pretty')
    return pino(options, pretty({ destination, colorize: destination.isTTY, sync: true }));
  return pino(options, pino.destination({ dest: destination.fd, sync: true }));
}

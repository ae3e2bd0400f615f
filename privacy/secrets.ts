/**
 * The two secrets sealing and hashing need: the master key (wraps data keys)
 * and the hash secret (keys identifier hashes). Taken from the environment
 * in production; on a first embedded start without them, generated into the
 * data directory with mode 0600, with a warning, so `npm start` needs no set-up.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCodes, TandemError } from '../schemas/errors.js';

export interface SecretSource {
  /** The environment variable's name, for messages. */
  readonly variable: string;
  /** Its value: 32 bytes as base64, base64url or hex. */
  readonly value: string | undefined;
  /** Where a generated secret is kept when the variable is unset. */
  readonly file: string;
}

/** Loads a 32-byte secret from its variable, else its file, else generates the file; `generated` says which. */
export async function loadSecret(
  source: SecretSource,
): Promise<{ secret: Buffer; generated: boolean }> {
  if (source.value) return { secret: decode(source.value, source.variable), generated: false };
  try {
    return {
      secret: decode((await readFile(source.file, 'utf8')).trim(), source.file),
      generated: false,
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(32);
  await mkdir(dirname(source.file), { recursive: true });
  // Written aside, then linked into place: a process starting at the same moment
  // sees either no file or the whole secret, and never overwrites one (link fails on EEXIST).
  const aside = `${source.file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(aside, `${secret.toString('base64url')}\n`, { mode: 0o600 });
  try {
    await link(aside, source.file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return {
      secret: decode((await readFile(source.file, 'utf8')).trim(), source.file),
      generated: false,
    };
  } finally {
    await rm(aside, { force: true });
  }
  return { secret, generated: true };
}

function decode(text: string, where: string): Buffer {
  const bytes = /^[0-9a-f]{64}$/i.test(text)
    ? Buffer.from(text, 'hex')
    : Buffer.from(text, 'base64url');
  if (bytes.length !== 32) {
    throw new TandemError(
      ErrorCodes.CONFIG_INVALID,
      `${where}: must be 32 bytes as base64 or hex (got ${bytes.length} bytes)`,
    );
  }
  return bytes;
}

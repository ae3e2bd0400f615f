import { resolve } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, TandemError } from './errors.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const kurrentDbUrl = z
  .string()
  .regex(
    /^(kurrentdb|kdb|esdb)(\+discover)?:\/\/\S+$/,
    'must be a KurrentDB connection string, e.g. kurrentdb://host:2113?tls=false',
  );
const httpUrl = z.url({
  protocol: /^https?$/,
  error: 'must be an http(s) URL, e.g. http://clickhouse:8123',
});

/**
 * Every setting Tandem reads, by environment variable. This schema is the one
 * source of truth: defaults, validation and the configuration reference.
 */
export const EnvSchema = z.object({
  /** Where the embedded stores keep their files. */
  TANDEM_DATA_DIR: z.string().min(1).default('./tandem-data'),
  /** A KurrentDB cluster to use instead of the embedded LMDB log. */
  TANDEM_EVENTSTORE_URL: kurrentDbUrl.optional(),
  /** A ClickHouse server or cluster to use instead of embedded chDB. */
  TANDEM_CLICKHOUSE_URL: httpUrl.optional(),
  /** Least severe log level written. */
  TANDEM_LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  /** `json` (the default off a terminal), `pretty` (the default on one). */
  TANDEM_LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});
export type Env = z.infer<typeof EnvSchema>;

/**
 * The settings as the program uses them, derived from the variables; relative
 * paths resolve against `cwd`.
 */
export function configSchema(cwd: string) {
  return EnvSchema.transform((env) => {
    const dataDir = resolve(cwd, env.TANDEM_DATA_DIR);
    return {
      dataDir,
      eventStore: env.TANDEM_EVENTSTORE_URL
        ? { kind: 'kurrentdb' as const, connectionString: env.TANDEM_EVENTSTORE_URL }
        : { kind: 'lmdb' as const, path: resolve(dataDir, 'eventstore') },
      clickhouseUrl: env.TANDEM_CLICKHOUSE_URL,
      log: { level: env.TANDEM_LOG_LEVEL, format: env.TANDEM_LOG_FORMAT },
    };
  });
}
export type Config = z.output<ReturnType<typeof configSchema>>;

/**
 * Reads the configuration from environment variables. Empty values count as
 * unset. A bad value throws a TandemError naming each variable and what is wrong.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const relevant = Object.fromEntries(
    Object.keys(EnvSchema.shape)
      .map((name) => [name, env[name]?.trim()])
      .filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = configSchema(cwd).safeParse(relevant);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const variable = String(issue.path[0]);
    return {
      variable,
      message: `${issue.message} (got "${String(relevant[variable]).slice(0, 80)}")`,
    };
  });
  throw new TandemError(
    ErrorCodes.CONFIG_INVALID,
    `invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`,
    { problems },
  );
}

import { resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULT_PURPOSES, Purpose } from './consent.js';
import { ErrorCodes, TandemError } from './errors.js';
import { DEFAULT_RETENTION, RetentionSetting } from './retention.js';

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
  TANDEM_CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,63}$/, 'must be a lower-case identifier such as tandem')
    .default('tandem'),
  TANDEM_CLICKHOUSE_CLUSTER: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/, 'must be the name of a cluster in remote_servers')
    .optional(),
  /** Least severe log level written. */
  TANDEM_LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  /** `json` (the default off a terminal), `pretty` (the default on one). */
  TANDEM_LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
  /** Address the HTTP server listens on. */
  TANDEM_HOST: z.string().min(1).default('127.0.0.1'),
  /** Port the HTTP server listens on; 0 picks a free one. */
  TANDEM_PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  /** Bootstrap write key for the tracking API; generated into the data directory when unset. */
  TANDEM_WRITE_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Bootstrap API key with every role (admin), for a first start and tests; generated into the data directory when unset. */
  TANDEM_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Requests per minute each API key may make. */
  TANDEM_API_RATE_LIMIT: z.coerce.number().int().min(1).default(1200),
  /** Minutes between trainings of the recommendation model (beside the projector). */
  TANDEM_RECO_REFRESH_MINUTES: z.coerce.number().int().min(1).max(10_080).default(60),
  /** 32 bytes (base64 or hex) that wrap every data key; generated into the data directory when unset. */
  TANDEM_MASTER_KEY: z.string().min(1).optional(),
  /** 32 bytes (base64 or hex) keying identifier hashes; generated into the data directory when unset. */
  TANDEM_HASH_SECRET: z.string().min(1).optional(),
  /** A JSON file overriding the identity rules (docs/identity.md); the documented defaults when unset. */
  TANDEM_IDENTITY_RULES: z.string().min(1).optional(),
  /** Country calling code for phone numbers written without one, e.g. `+86`. */
  TANDEM_DEFAULT_PHONE_COUNTRY_CODE: z
    .string()
    .regex(/^\+[1-9]\d{0,3}$/, 'must be a country calling code such as +86')
    .optional(),
  /** Purposes consent is asked for, comma-separated (`POST /v1/consents` takes these only). */
  TANDEM_CONSENT_PURPOSES: z
    .string()
    .transform((text) => [...new Set(text.split(',').map((name) => name.trim()))])
    .pipe(z.array(Purpose).min(1))
    .optional(),
  /** Days each kind of event is kept, e.g. `clickstream=400,orders=3650`; `none` keeps everything (docs/privacy.md#retention). */
  TANDEM_RETENTION: RetentionSetting.optional(),
  /** Crash tests only: the process kills itself (SIGKILL) right after this step, e.g. `privacy:destroy_keys`. Never set it in production. */
  TANDEM_FAULT_KILL_AFTER: z
    .string()
    .regex(/^privacy:[a-z_]+$/, 'must be privacy:STEP, e.g. privacy:destroy_keys')
    .optional(),
});

/** Variables whose values never appear in messages. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set([
  'TANDEM_WRITE_KEY',
  'TANDEM_ADMIN_KEY',
  'TANDEM_MASTER_KEY',
  'TANDEM_HASH_SECRET',
]);
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
      warehouse: {
        target: env.TANDEM_CLICKHOUSE_URL
          ? { kind: 'server' as const, url: env.TANDEM_CLICKHOUSE_URL }
          : { kind: 'chdb' as const, path: resolve(dataDir, 'clickhouse') },
        database: env.TANDEM_CLICKHOUSE_DATABASE,
        cluster: env.TANDEM_CLICKHOUSE_CLUSTER,
      },
      log: { level: env.TANDEM_LOG_LEVEL, format: env.TANDEM_LOG_FORMAT },
      server: { host: env.TANDEM_HOST, port: env.TANDEM_PORT },
      api: { requestsPerMinute: env.TANDEM_API_RATE_LIMIT },
      recommendations: { refreshMinutes: env.TANDEM_RECO_REFRESH_MINUTES },
      secrets: {
        writeKey: env.TANDEM_WRITE_KEY,
        adminKey: env.TANDEM_ADMIN_KEY,
        masterKey: env.TANDEM_MASTER_KEY,
        hashSecret: env.TANDEM_HASH_SECRET,
        directory: resolve(dataDir, 'secrets'),
      },
      defaultPhoneCountryCode: env.TANDEM_DEFAULT_PHONE_COUNTRY_CODE,
      identityRulesFile: env.TANDEM_IDENTITY_RULES && resolve(cwd, env.TANDEM_IDENTITY_RULES),
      consent: { purposes: env.TANDEM_CONSENT_PURPOSES ?? [...DEFAULT_PURPOSES] },
      retention: env.TANDEM_RETENTION ?? DEFAULT_RETENTION,
      faults: { killAfter: env.TANDEM_FAULT_KILL_AFTER },
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
    const value = String(relevant[variable]);
    const got = SECRET_VARIABLES.has(variable)
      ? `${value.length} characters, not shown`
      : `"${value.slice(0, 80)}"`;
    return { variable, message: `${issue.message} (got ${got})` };
  });
  throw new TandemError(
    ErrorCodes.CONFIG_INVALID,
    `invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`,
    { problems },
  );
}

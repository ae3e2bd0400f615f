import { resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULT_PURPOSES, Purpose } from './consent.js';
import { ErrorCodes, TandemError } from './errors.js';
import { DEFAULT_RETENTION, type RetentionPolicy, RetentionSetting } from './retention.js';

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

/** The sections of the configuration reference (docs/configuration.md), in order. */
export const SETTING_GROUPS = {
  stores: 'Stores',
  server: 'Server',
  secrets: 'Keys and secrets',
  identity: 'Identity',
  privacy: 'Privacy',
  recommendations: 'Recommendations',
  logging: 'Logging',
  faults: 'Test-only faults',
} as const;
export type SettingGroup = keyof typeof SETTING_GROUPS;

/**
 * What the configuration reference says about a variable beyond its schema;
 * kept as the variable's zod metadata (`settingDoc` reads it back).
 */
export type SettingDoc = {
  readonly group: SettingGroup;
  readonly description: string;
  /** What the program does when the variable is unset, for one without a schema default. */
  readonly unset?: string;
  /** The accepted form in words, where the schema's own constraints say too little. */
  readonly format?: string;
  /** Its value never appears in messages: only its length. */
  readonly secret?: true;
};

/** Attaches the documentation of a variable to its schema. */
function setting<T extends z.ZodType>(schema: T, doc: SettingDoc): T {
  return schema.meta({ ...doc }) as T;
}

/** `clickstream=400` (the form `TANDEM_RETENTION` takes) for a policy. */
const retentionText = (policy: RetentionPolicy) =>
  Object.entries(policy)
    .map(([kind, days]) => `${kind}=${days}`)
    .join(',') || 'none';

const generated = (file: string) =>
  `generated into \`secrets/${file}\` under the data directory on the first start, then read from there`;

const serverModeRequires = (embedded: string) =>
  `with \`TANDEM_EVENTSTORE_URL\` set, \`tandem serve\`, \`demo\` and \`import\` stop with exit code 78; embedded, ${embedded}`;

/**
 * Every setting Tandem reads, by environment variable. This schema is the one
 * source of truth: defaults, validation and the configuration reference
 * (docs/configuration.md, `npm run docs:config`).
 */
export const EnvSchema = z.object({
  TANDEM_DATA_DIR: setting(z.string().min(1).default('./tandem-data'), {
    group: 'stores',
    description:
      "Where the embedded stores and the local state keep their files. Embedded: `eventstore/` (LMDB log), `clickhouse/` (chDB), `keystore/` and `suppression/` (LMDB), `identity/` (the resolver's snapshot) and `secrets/`. With `TANDEM_EVENTSTORE_URL` set, the data keys and the suppression list are in the log and no LMDB store is opened: the directory holds only `identity/` (where the resolver runs), bootstrap keys generated into `secrets/`, and `clickhouse/` if `TANDEM_CLICKHOUSE_URL` is unset; each machine may have its own. A relative path resolves against the working directory.",
    format: 'a directory path; created if missing',
  }),
  TANDEM_EVENTSTORE_URL: setting(kurrentDbUrl.optional(), {
    group: 'stores',
    description:
      'A KurrentDB node or cluster to use instead of the embedded LMDB log (server mode). The data keys and the suppression list are then kept in the log too, shared by every process on any machine, and `TANDEM_MASTER_KEY` and `TANDEM_HASH_SECRET` are required.',
    format:
      'a KurrentDB connection string: `kurrentdb://`, `kdb://` or `esdb://` (`+discover` for gossip), e.g. `kurrentdb://node1:2113?tls=false`',
    unset: 'the embedded LMDB log under `eventstore/` in the data directory',
  }),
  TANDEM_CLICKHOUSE_URL: setting(httpUrl.optional(), {
    group: 'stores',
    description:
      'A ClickHouse server to use instead of embedded chDB; credentials go in the URL. The projector, the query API and the privacy runner all use it.',
    format: 'an `http://` or `https://` URL, e.g. `http://user:password@clickhouse:8123`',
    unset: 'embedded chDB under `clickhouse/` in the data directory',
  }),
  TANDEM_CLICKHOUSE_DATABASE: setting(
    z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,63}$/, 'must be a lower-case identifier such as tandem')
      .default('tandem'),
    { group: 'stores', description: "The database holding Tandem's tables; created if missing." },
  ),
  TANDEM_CLICKHOUSE_CLUSTER: setting(
    z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/, 'must be the name of a cluster in remote_servers')
      .optional(),
    {
      group: 'stores',
      description:
        "A cluster in the ClickHouse server's `remote_servers`: every DDL statement runs `ON CLUSTER` and tables use `ReplicatedReplacingMergeTree`.",
      unset: 'plain `ReplacingMergeTree` tables on the one server',
    },
  ),
  TANDEM_HOST: setting(z.string().min(1).default('127.0.0.1'), {
    group: 'server',
    description:
      'Address the HTTP server listens on; `0.0.0.0` to serve other machines. `--host` overrides it.',
  }),
  TANDEM_PORT: setting(z.coerce.number().int().min(0).max(65_535).default(8080), {
    group: 'server',
    description: 'Port the HTTP server listens on; 0 picks a free one. `--port` overrides it.',
  }),
  TANDEM_API_RATE_LIMIT: setting(z.coerce.number().int().min(1).default(1200), {
    group: 'server',
    description:
      'Requests per minute each API key may make on the query API, counted by each process on its own; more is a 429 with `Retry-After`. Ingest routes are not limited.',
  }),
  TANDEM_WRITE_KEY: setting(z.string().min(16, 'must be at least 16 characters').optional(), {
    group: 'secrets',
    description:
      'Bootstrap write key of the tracking, POS, catalog, consent and import routes (source `default`), accepted by processes that run ingest. Make one per source with `tandem keys create --source`.',
    unset: `${generated('write.key')} and logged once as \`localWriteKey\`; each data directory gets its own`,
    secret: true,
  }),
  TANDEM_ADMIN_KEY: setting(z.string().min(16, 'must be at least 16 characters').optional(), {
    group: 'secrets',
    description:
      'Bootstrap API key with every role (key id `bootstrap-admin`), for a first start and tests. Make per-team keys with `tandem keys create --role`.',
    unset: `${generated('admin.key')} and logged once as \`localAdminKey\`; each data directory gets its own`,
    secret: true,
  }),
  TANDEM_MASTER_KEY: setting(z.string().min(1).optional(), {
    group: 'secrets',
    description:
      'Wraps every per-person data key in the key store (in the log in server mode). Every process of a deployment needs the same one. Losing it makes every sealed field unreadable; with it, any backup holding the keys (in server mode, every KurrentDB backup) unseals what it holds, even of people erased since. Keep it out of backups.',
    format: '32 bytes as base64, base64url or 64 hex digits',
    unset: serverModeRequires(generated('master.key')),
    secret: true,
  }),
  TANDEM_HASH_SECRET: setting(z.string().min(1).optional(), {
    group: 'secrets',
    description:
      'Keys the identifier hashes (HMAC-SHA-256). Every process of a deployment needs the same one, for ever: a new one makes every stored hash unmatchable.',
    format: '32 bytes as base64, base64url or 64 hex digits',
    unset: serverModeRequires(generated('hash.secret')),
    secret: true,
  }),
  TANDEM_IDENTITY_RULES: setting(z.string().min(1).optional(), {
    group: 'identity',
    description:
      'A JSON file overriding the identity rules; a relative path resolves against the working directory.',
    format: 'a file path',
    unset: 'the documented default rules',
  }),
  TANDEM_DEFAULT_PHONE_COUNTRY_CODE: setting(
    z
      .string()
      .regex(/^\+[1-9]\d{0,3}$/, 'must be a country calling code such as +86')
      .optional(),
    {
      group: 'identity',
      description:
        'Country calling code for phone numbers written without one, e.g. `+86`, so that `138 1234 5678` and `+86 138 1234 5678` hash alike.',
      unset: 'a phone number without a country code is not used as an identifier',
    },
  ),
  TANDEM_CONSENT_PURPOSES: setting(
    z
      .string()
      .transform((text) => [...new Set(text.split(',').map((name) => name.trim()))])
      .pipe(z.array(Purpose).min(1))
      .optional(),
    {
      group: 'privacy',
      description:
        'The purposes consent is asked for. `POST /v1/consents` takes these only; tracking and POS consent keep whatever they carry.',
      format: 'comma-separated snake_case names',
      unset: `\`${DEFAULT_PURPOSES.join(',')}\``,
    },
  ),
  TANDEM_RETENTION: setting(RetentionSetting.optional(), {
    group: 'privacy',
    description:
      'Days each kind of event is kept (`clickstream`, `orders`, `consent`), counted from when it happened; a kind not named is kept for ever.',
    format:
      '`KIND=DAYS` pairs, comma-separated, DAYS 1 to 36500, e.g. `clickstream=400,orders=3650`; or `none` to keep everything',
    unset: `\`${retentionText(DEFAULT_RETENTION)}\``,
  }),
  TANDEM_RECO_REFRESH_MINUTES: setting(z.coerce.number().int().min(1).max(10_080).default(60), {
    group: 'recommendations',
    description:
      'Minutes between trainings of the recommendation model, by the process that runs the projector.',
  }),
  TANDEM_LOG_LEVEL: setting(z.enum(LOG_LEVELS).default('info'), {
    group: 'logging',
    description:
      'Least severe log level written. `debug` also logs every event appended to the log.',
  }),
  TANDEM_LOG_FORMAT: setting(z.enum(['json', 'pretty']).optional(), {
    group: 'logging',
    description: 'How log lines are written, to stderr.',
    unset: '`pretty` on a terminal, `json` otherwise',
  }),
  TANDEM_FAULT_KILL_AFTER: setting(
    z
      .string()
      .regex(/^privacy:[a-z_]+$/, 'must be privacy:STEP, e.g. privacy:destroy_keys')
      .optional(),
    {
      group: 'faults',
      description:
        'Crash tests only: the process kills itself (SIGKILL) right after this step of a privacy request, e.g. `privacy:destroy_keys`. Never set it in production.',
      unset: 'no fault',
    },
  ),
});

/** The documentation attached to a variable of `EnvSchema`. */
export function settingDoc(variable: keyof typeof EnvSchema.shape): SettingDoc {
  const meta = EnvSchema.shape[variable].meta();
  if (!meta || typeof meta.group !== 'string' || typeof meta.description !== 'string')
    throw new Error(`${variable} has no documentation in EnvSchema`);
  return meta as SettingDoc;
}

/** Variables whose values never appear in messages. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set(
  (Object.keys(EnvSchema.shape) as (keyof typeof EnvSchema.shape)[]).filter(
    (variable) => settingDoc(variable).secret,
  ),
);
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

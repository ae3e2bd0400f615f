/**
 * `docs/configuration.md`, the reference of every `TANDEM_*` variable,
 * generated from `EnvSchema`: the accepted values and defaults come from the
 * schema itself (`z.toJSONSchema`), the rest from each variable's metadata
 * (`settingDoc`). A test fails when the checked-in file differs;
 * `npm run docs:config` rewrites it.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { EnvSchema, SETTING_GROUPS, type SettingGroup, settingDoc } from './config.js';

export const CONFIG_DOCS_FILE = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

type Variable = keyof typeof EnvSchema.shape;

const INTRO = `# Configuration reference

Generated from \`EnvSchema\` in \`schemas/config.ts\` by \`npm run docs:config\`;
a test fails when this file and the schema disagree. Do not edit by hand.

Tandem reads its settings from environment variables only. An empty value
counts as unset. A bad value stops the program before it opens anything, with
exit code 78 and a message naming each bad variable, what is wrong and the
value it got (for a secret, only its length). \`tandem serve --host\`,
\`--port\` and \`--data-dir\` override \`TANDEM_HOST\`, \`TANDEM_PORT\` and
\`TANDEM_DATA_DIR\`.
`;

const GROUP_INTROS: Record<SettingGroup, string> = {
  stores: `Where the log and the warehouse live. With neither URL set, everything is
embedded under the data directory; each URL switches its store to a server
([operations.md](operations.md)).`,
  server: `The HTTP server of \`tandem serve\`: the ingest routes, the query API,
\`/healthz\`, \`/readyz\` and \`/metrics\`.`,
  secrets: `Secrets never appear in messages or logs, except a key generated on this
start, logged once for local use. When unset, the bootstrap keys are generated
into \`secrets/\` under the data directory (mode 0600), one per directory; so are
the master key and the hash secret on the embedded stores, with a warning. In
server mode (\`TANDEM_EVENTSTORE_URL\`) the master key and the hash secret must
be set, the same on every process of a deployment: without them a start stops
with exit code 78 ([operations.md](operations.md#secrets-and-the-data-directory)).`,
  identity: `How identifiers are normalised and linked ([identity.md](identity.md)).`,
  privacy: `Consent and retention ([privacy.md](privacy.md)).`,
  recommendations: `The recommendation model ([api.md](api.md#recommendations)).`,
  logging: `Logs are pino lines on stderr.`,
  faults: `For the crash tests only.`,
};

const OUTRO = `## Read by tests and benchmarks only

Not part of \`EnvSchema\`; the program never reads them.

| variable | what |
| --- | --- |
| \`TANDEM_TEST_KURRENTDB_URL\` | a KurrentDB for the event store contract tests (\`eventstore/event-store.kurrentdb.int.test.ts\`) |
| \`TANDEM_TEST_CLICKHOUSE_URL\` | a ClickHouse server for the warehouse and projection tests (\`warehouse/testing/targets.ts\`) |
| \`TANDEM_BENCH_PROFILE_DIR\` | where \`npm run bench -- ingest\` writes a V8 CPU profile of the server |
| \`TANDEM_BENCH_SEGMENT_COPIES\` | \`npm run bench -- segments\` measures on that many copies of the projected fixtures, made in SQL (\`bench/warehouse-copy.ts\`) |
`;

/** The JSON Schema of one variable as it is read (the input side of transforms). */
interface VariableSchema {
  readonly type?: string;
  readonly enum?: readonly unknown[];
  readonly default?: unknown;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly format?: string;
}

function variableSchema(variable: Variable): VariableSchema {
  return z.toJSONSchema(EnvSchema.shape[variable], {
    io: 'input',
    unrepresentable: 'any',
  }) as VariableSchema;
}

/** What a variable accepts, in words: its documented format, else its schema's constraints. */
function accepts(variable: Variable, schema: VariableSchema): string {
  const format = settingDoc(variable).format;
  if (format) return format;
  if (schema.enum) return `one of ${schema.enum.map((value) => `\`${value}\``).join(', ')}`;
  if (schema.type === 'integer') {
    const { minimum, maximum } = schema;
    if (minimum !== undefined && maximum !== undefined && maximum < Number.MAX_SAFE_INTEGER)
      return `an integer from ${minimum} to ${maximum}`;
    return minimum === undefined ? 'an integer' : `an integer, at least ${minimum}`;
  }
  if (schema.pattern) return `a string matching \`${schema.pattern}\``;
  if (schema.minLength !== undefined && schema.minLength > 1)
    return `a string of at least ${schema.minLength} characters`;
  return schema.type === 'string' ? 'a non-empty string' : String(schema.type);
}

/** The default, or what happens when the variable is unset. */
function whenUnset(variable: Variable, schema: VariableSchema): string {
  if (schema.default !== undefined) return `\`${String(schema.default)}\``;
  const unset = settingDoc(variable).unset;
  if (!unset) throw new Error(`${variable} has neither a default nor an unset text in EnvSchema`);
  return unset;
}

const anchor = (variable: string) => `#${variable.toLowerCase()}`;
const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** The reference as Markdown. */
export function renderConfigDocs(): string {
  const variables = Object.keys(EnvSchema.shape) as Variable[];
  const groups = Object.keys(SETTING_GROUPS) as SettingGroup[];
  const inGroup = (group: SettingGroup) =>
    variables.filter((variable) => settingDoc(variable).group === group);
  const secrets = variables.filter((variable) => settingDoc(variable).secret);

  const index = [
    '| variable | section | default |',
    '| --- | --- | --- |',
    ...groups.flatMap((group) =>
      inGroup(group).map((variable) => {
        const schema = variableSchema(variable);
        const fallback = schema.default === undefined ? '—' : `\`${String(schema.default)}\``;
        return `| [\`${variable}\`](${anchor(variable)}) | ${SETTING_GROUPS[group]} | ${fallback} |`;
      }),
    ),
    '',
    `Secrets: ${secrets.map((variable) => `\`${variable}\``).join(', ')}.`,
    '',
  ].join('\n');

  const sections = groups.map((group) => {
    const entries = inGroup(group).map((variable) => {
      const doc = settingDoc(variable);
      const schema = variableSchema(variable);
      const unset = schema.default === undefined ? 'When unset' : 'Default';
      return [
        `### ${variable}`,
        '',
        doc.description,
        '',
        `- Accepts: ${cell(accepts(variable, schema))}`,
        `- ${unset}: ${cell(whenUnset(variable, schema))}`,
        ...(doc.secret ? ['- Secret: only its length appears in messages'] : []),
        '',
      ].join('\n');
    });
    return [`## ${SETTING_GROUPS[group]}`, '', GROUP_INTROS[group], '', ...entries].join('\n');
  });

  return `${[INTRO, index, ...sections, OUTRO].join('\n')}`.replace(/\n+$/, '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(CONFIG_DOCS_FILE, renderConfigDocs());
  process.stdout.write(`wrote ${CONFIG_DOCS_FILE}\n`);
}

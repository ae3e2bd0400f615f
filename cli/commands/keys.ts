import type { Command } from 'commander';
import { openAuditLog } from '../../privacy/audit.js';
import { type KeyInfo, openKeyRegistry } from '../../query-api/keys/key-registry.js';
import { KeyGrant, ROLES, type Role } from '../../schemas/api-keys.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import { commaList } from '../options.js';
import { withRuntime } from '../runtime.js';

/** Who made a change from the command line, in the key stream and the audit trail. */
const CLI_ACTOR = 'cli';

/**
 * `tandem keys create|list|revoke`: the same key stream the server reads, so
 * a key made here works on a running server within a second, and a revoked
 * one stops as soon.
 */
export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('make, list and revoke API and write keys');

  keys
    .command('create')
    .description('make an API key with a role, or a write key for a source; prints the token once')
    .option(
      '--role <roles>',
      `API key roles, comma-separated: ${ROLES.join(', ')}`,
      commaList('--role', ROLES),
    )
    .option('--source <id>', 'make a write key for this source instead (e.g. web-shop)')
    .requiredOption('--name <name>', 'what the key is for, e.g. "BI team"')
    .action((options: { role?: Role[]; source?: string; name: string }) =>
      withRuntime(async ({ eventStore }) => {
        if ((options.role === undefined) === (options.source === undefined))
          throw new TandemError(ErrorCodes.VALIDATION, 'give either --role or --source');
        const parsed = KeyGrant.safeParse(
          options.role
            ? { kind: 'api', roles: options.role }
            : { kind: 'write', sourceId: options.source },
        );
        if (!parsed.success)
          throw new TandemError(
            ErrorCodes.VALIDATION,
            `--source ${parsed.error.issues[0]?.message ?? 'is invalid'}`,
          );
        const registry = await openKeyRegistry({ eventStore });
        const { key, token } = await registry.create(
          { name: options.name, grant: parsed.data },
          CLI_ACTOR,
        );
        await openAuditLog(eventStore).record({
          keyId: CLI_ACTOR,
          action: 'key.create',
          outcome: 'ok',
          details: { created: key.keyId, grant: parsed.data },
        });
        process.stdout.write(`${describe(key)}\ntoken (shown once, keep it secret): ${token}\n`);
      }),
    );

  keys
    .command('list')
    .description('every key, revoked ones included; never the secrets')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withRuntime(async ({ eventStore }) => {
        const listed = (await openKeyRegistry({ eventStore })).list();
        process.stdout.write(
          options.json
            ? `${JSON.stringify(listed, null, 2)}\n`
            : `${listed.length === 0 ? 'no keys yet' : listed.map(describe).join('\n')}\n`,
        );
      }),
    );

  keys
    .command('revoke')
    .description('stop a key from working')
    .argument('<keyId>', 'the key id, key_…')
    .action((keyId: string) =>
      withRuntime(async ({ eventStore }) => {
        const key = await (await openKeyRegistry({ eventStore })).revoke(keyId, CLI_ACTOR);
        await openAuditLog(eventStore).record({
          keyId: CLI_ACTOR,
          action: 'key.revoke',
          outcome: 'ok',
          details: { revoked: key.keyId },
        });
        process.stdout.write(`${describe(key)}\n`);
      }),
    );
}

function describe(key: KeyInfo): string {
  const grant =
    key.grant.kind === 'api'
      ? `roles ${key.grant.roles.join(',')}`
      : `source ${key.grant.sourceId}`;
  const state = key.revokedAt ? `revoked ${key.revokedAt} by ${key.revokedBy}` : 'active';
  return `${key.keyId}  ${key.name}  ${grant}  created ${key.createdAt} by ${key.createdBy}  ${state}`;
}

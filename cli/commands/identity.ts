import type { Command } from 'commander';
import { requestUnlink } from '../../identity/commands.js';
import { describeDecision, profileHistory, shortIdentifier } from '../../identity/explain.js';
import { openResolver } from '../../identity/resolver.js';
import { IdentifierHasher, identifierFromText } from '../../privacy/identifiers.js';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type { Identifier } from '../../schemas/identifier.js';
import { type Runtime, withRuntime } from '../runtime.js';
import { identitySnapshotFile, loadHashSecret } from '../stores.js';

/** `tandem identity show|unlink`. */
export function registerIdentityCommands(program: Command): void {
  const identity = program
    .command('identity')
    .description('look at profiles and correct the identity graph');

  identity
    .command('show')
    .description('a profile and the story of every decision that shaped it')
    .argument('<who>', 'TYPE:VALUE (e.g. email:ana@example.com) or a profile id (prf_…)')
    .action(async (who: string) =>
      withRuntime(async (runtime) => {
        const resolver = await openResolver({
          eventStore: runtime.eventStore,
          rules: runtime.identityRules,
          snapshotFile: identitySnapshotFile(runtime.config),
          appendDecisions: false,
        });
        await resolver.catchUp();
        const profileId = who.startsWith('prf_')
          ? who
          : resolver.graph.profileOf((await identifierReader(runtime))(who).hash);
        const profile = profileId && resolver.graph.profile(profileId);
        if (!profile) throw new TandemError(ErrorCodes.NOT_FOUND, `no profile has ${who}`);
        const lines = [
          `${profile.id}${profile.shared ? ' (a shared identifier: it never links)' : ''}`,
          `identifiers: ${profile.identifiers.map(shortIdentifier).join(', ')}`,
          `consent: ${JSON.stringify(profile.consent)}`,
          `traits: ${JSON.stringify(profile.traits)}`,
          `seen: ${JSON.stringify(profile.seen)}`,
          'decisions:',
          ...(await profileHistory(runtime.eventStore, profile.id)).map(
            ({ event }) => `  ${describeDecision(event)}`,
          ),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }),
    );

  identity
    .command('unlink')
    .description(
      'say two identifiers are different people: their profile splits, and they stay apart',
    )
    .argument('<a>', 'TYPE:VALUE')
    .argument('<b>', 'TYPE:VALUE')
    .requiredOption('--reason <text>', 'why (kept with the decision; no personal data)')
    .option('--by <name>', 'who asks (kept with the decision)', process.env.USER ?? 'operator')
    .action(async (a: string, b: string, options: { reason: string; by: string }) =>
      withRuntime(async (runtime) => {
        const read = await identifierReader(runtime);
        const { position } = await requestUnlink(runtime.eventStore, {
          identifiers: [read(a), read(b)],
          reason: options.reason,
          requestedBy: options.by,
        });
        process.stdout.write(
          `unlink requested at ${position.commit}/${position.prepare}; the resolver applies it in log order\n`,
        );
      }),
    );
}

/** Reads TYPE:VALUE into the identifier matching knows (normalised, hashed); the secret is loaded once. */
async function identifierReader(runtime: Runtime): Promise<(text: string) => Identifier> {
  const { secret } = await loadHashSecret(runtime.config);
  const hasher = new IdentifierHasher(secret);
  const options = { defaultCountryCode: runtime.config.defaultPhoneCountryCode };
  return (text) => identifierFromText(text, hasher, options);
}

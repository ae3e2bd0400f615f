import type { Command } from 'commander';
import { openResolver, readGraphSnapshot } from '../../identity/resolver.js';
import { rebuildProjections } from '../../projections/rebuild.js';
import { type Runtime, withRuntime } from '../runtime.js';
import { identitySnapshotFile, openConfiguredWarehouse } from '../stores.js';

/** `tandem replay --identity --projections`: derived state rebuilt from the whole log. */
export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description('rebuild derived state from the whole log')
    .option('--identity', 'rebuild the identity graph (and its snapshot) from the log')
    .option(
      '--projections',
      'rebuild the warehouse tables into shadow tables and swap them in (queries keep working)',
    )
    .action(async (options: { identity?: true; projections?: true }, command: Command) => {
      if (!options.identity && !options.projections)
        command.error('error: say what to replay: --identity, --projections, or both');
      await withRuntime(async (runtime) => {
        if (options.identity) await replayIdentity(runtime);
        if (options.projections) await replayProjections(runtime);
      });
    });
}

async function replayIdentity(runtime: Runtime): Promise<void> {
  const file = identitySnapshotFile(runtime.config);
  const before = await readGraphSnapshot(file, runtime.identityRules);
  const started = performance.now();
  const resolver = await openResolver({
    eventStore: runtime.eventStore,
    rules: runtime.identityRules,
    snapshotFile: file,
    resume: false,
  });
  const status = await resolver.catchUp();
  await resolver.snapshot();
  const seconds = (performance.now() - started) / 1000;
  const lines = [
    `replayed ${status.facts.toLocaleString('en-US')} facts in ${seconds.toFixed(1)} s: ${status.profiles.toLocaleString('en-US')} profiles, ${status.identifiers.toLocaleString('en-US')} identifiers, up to ${status.position ?? 'the start'}`,
    before
      ? before.graph.digest() === resolver.graph.digest()
        ? `equal to the graph it replaces (snapshot at ${before.position})`
        : `DIFFERENT from the graph it replaces (snapshot at ${before.position}): were the identity rules changed, or the log after ${before.position}?`
      : 'there was no snapshot to compare with',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function replayProjections(runtime: Runtime): Promise<void> {
  const warehouse = await openConfiguredWarehouse(runtime);
  try {
    const started = performance.now();
    const report = await rebuildProjections({
      eventStore: runtime.eventStore,
      warehouse,
      priority: runtime.identityRules.priority,
      retention: runtime.config.retention,
      log: runtime.logger,
    });
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(
      `rebuilt ${report.tables.length} tables from ${report.rebuilt.events.toLocaleString('en-US')} events (${report.rebuilt.rows.toLocaleString('en-US')} rows) in ${seconds.toFixed(1)} s and swapped them in; ${report.caughtUp.events.toLocaleString('en-US')} events appended meanwhile were added after the swap\n`,
    );
  } finally {
    await warehouse.close();
  }
}

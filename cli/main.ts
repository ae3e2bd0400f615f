#!/usr/bin/env node
/**
 * The `tandem` command. Each sub-command lives in `commands/` and registers
 * itself here; expected failures (TandemError) print their message and exit
 * with a code that says what kind of failure it was.
 */
import { Command } from 'commander';
import { ErrorCodes, isTandemError } from '../schemas/errors.js';
import { registerBenchCommand } from './commands/bench.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerGenerateCommand } from './commands/generate.js';
import { registerIdentityCommands } from './commands/identity.js';
import { registerImportCommand } from './commands/import.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerLogCommands } from './commands/log.js';
import { registerReplayCommand } from './commands/replay.js';
import { registerServeCommands } from './commands/start.js';
import { packageVersion } from './version.js';

/** Exit code for a bad configuration (sysexits EX_CONFIG). */
const EXIT_CONFIG = 78;

/** Builds the command tree; exported so tests can inspect it without running it. */
export function buildProgram(): Command {
  const program = new Command('tandem')
    .description('Tandem: an event-sourced customer data platform for online-to-offline businesses')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();
  registerServeCommands(program);
  registerDemoCommand(program);
  registerLogCommands(program);
  registerGenerateCommand(program);
  registerImportCommand(program);
  registerIdentityCommands(program);
  registerKeysCommands(program);
  registerReplayCommand(program);
  registerBenchCommand(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (isTandemError(error)) {
    process.stderr.write(`tandem: ${error.message}\n`);
    process.exitCode = error.code === ErrorCodes.CONFIG_INVALID ? EXIT_CONFIG : 1;
  } else {
    throw error;
  }
}

import type { Command } from 'commander';
import { BENCHMARKS } from '../../bench/index.js';

/** `tandem bench [NAME...]`: runs benchmarks and prints their tables. */
export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      'run benchmarks; each prints our figures beside a raw baseline measured in the same run',
    )
    .argument('[names...]', `benchmarks to run: ${Object.keys(BENCHMARKS).join(', ')}`)
    .action(async (names: string[]) => {
      if (names.length === 0) {
        const list = Object.entries(BENCHMARKS).map(
          ([name, bench]) => `  ${name.padEnd(12)} ${bench.summary}`,
        );
        process.stdout.write(`usage: npm run bench -- NAME\n\nbenchmarks:\n${list.join('\n')}\n`);
        return;
      }
      const unknown = names.filter((name) => !(name in BENCHMARKS));
      if (unknown.length > 0) {
        program.error(
          `unknown benchmark: ${unknown.join(', ')} (known: ${Object.keys(BENCHMARKS).join(', ')})`,
        );
      }
      for (const name of names) {
        process.stdout.write(
          `${await (BENCHMARKS[name] as (typeof BENCHMARKS)[string]).run()}\n\n`,
        );
      }
    });
}

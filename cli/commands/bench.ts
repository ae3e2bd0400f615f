import { type Command, InvalidArgumentError } from 'commander';
import { BENCHMARKS } from '../../bench/index.js';

/** `tandem bench [NAME...]`: runs benchmarks and prints their tables. */
export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      'run benchmarks; each prints our figures beside a raw baseline measured in the same run',
    )
    .argument('[names...]', `benchmarks to run: ${Object.keys(BENCHMARKS).join(', ')}`)
    .option(
      '--scale <factor>',
      'multiply the amount of work (e.g. 0.01 for a quick smoke run)',
      parseScale,
      1,
    )
    .action(async (names: string[], options: { scale: number }) => {
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
          `${await (BENCHMARKS[name] as (typeof BENCHMARKS)[string]).run({ scale: options.scale })}\n\n`,
        );
      }
    });
}

function parseScale(text: string): number {
  const value = Number(text);
  if (!(value > 0 && value <= 10))
    throw new InvalidArgumentError(`--scale must be a number in (0, 10], got "${text}"`);
  return value;
}

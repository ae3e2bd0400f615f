import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { generateDataset } from '../../fixtures/generate.js';
import { integer } from '../options.js';

/** `tandem generate`: writes a synthetic O2O dataset with its ground truth. */
export function registerGenerateCommand(program: Command): void {
  program
    .command('generate')
    .description(
      'write a synthetic O2O dataset (clickstream, POS receipts, consent, catalog, stores) with ground truth',
    )
    .requiredOption('--out <dir>', 'directory to write into (created if missing)')
    .option('--shoppers <n>', 'number of shoppers', integer('--shoppers'), 1000)
    .option('--stores <n>', 'number of stores', integer('--stores'), 10)
    .option('--days <n>', 'length of the period in days', integer('--days'), 90)
    .option(
      '--seed <n>',
      'random seed: the same arguments give byte-identical files',
      integer('--seed'),
      1,
    )
    .option('--locale <locale>', 'en or zh_CN', 'en')
    .option('--start <date>', 'first day of the period (YYYY-MM-DD, UTC)', '2026-01-01')
    .option('--products <n>', 'catalog size', integer('--products'), 2000)
    .action(
      async (options: {
        out: string;
        shoppers: number;
        stores: number;
        days: number;
        seed: number;
        locale: string;
        start: string;
        products: number;
      }) => {
        const bar = process.stderr.isTTY
          ? new SingleBar({
              format: 'generating [{bar}] {value}/{total} shoppers, {eta}s left',
              hideCursor: true,
            })
          : undefined;
        bar?.start(options.shoppers, 0);
        const started = performance.now();
        const manifest = await generateDataset(
          {
            shoppers: options.shoppers,
            stores: options.stores,
            days: options.days,
            seed: options.seed,
            locale: options.locale as 'en',
            start: options.start,
            products: options.products,
          },
          options.out,
          bar ? (done) => bar.update(done) : undefined,
        );
        bar?.stop();
        const seconds = (performance.now() - started) / 1000;
        const c = manifest.counts;
        const calls = Object.values(c.calls).reduce((sum, n) => sum + n, 0);
        process.stdout.write(
          [
            `wrote ${options.out} in ${seconds.toFixed(1)} s`,
            `  shoppers ${c.shoppers} in ${c.households} households; ${c.stores} stores; ${c.products} products`,
            `  clickstream: ${calls} calls in ${c.batches} batches (${Object.entries(c.calls)
              .map(([type, n]) => `${type} ${n}`)
              .join(', ')})`,
            `  online orders ${c.orders}, revenue ${(c.onlineRevenueCents / 100).toFixed(2)}`,
            `  POS receipts ${c.receipts} with ${c.receiptLines} lines, revenue ${(c.offlineRevenueCents / 100).toFixed(2)}`,
            `  consent statements ${c.consentRecords}; shared devices ${c.sharedDevices}; held-out purchases ${c.heldOutPurchases}`,
            '',
          ].join('\n'),
        );
      },
    );
}

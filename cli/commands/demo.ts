import type { Command } from 'commander';
import type { EventStore } from '../../eventstore/event-store.js';
import { AUDIT_STREAM } from '../../privacy/audit.js';
import type { ReadinessCheck } from '../../query-api/app.js';
import { KEYS_STREAM } from '../../schemas/api-keys.js';
import { type DemoClient, type DemoLoaded, loadDemo, readDemo, SHOWROOMERS } from '../demo.js';
import { integer } from '../options.js';
import { PARTS } from '../platform.js';
import { SYSTEM_STREAM, servingOptions, withServingPlatform } from './start.js';

interface DemoOptions {
  readonly host?: string;
  readonly port?: number;
  readonly dataDir?: string;
  readonly shoppers: number;
  readonly stores: number;
  readonly days: number;
  readonly seed: number;
}

/**
 * `tandem demo` (what `npm start` runs): the whole platform on the embedded
 * stores; on an empty data directory it first sends a generated chain
 * through it. `/readyz` answers 200 once the demo data is projected; a
 * second start finds the load recorded in the log and is ready at once.
 */
export function registerDemoCommand(program: Command): void {
  servingOptions(
    program
      .command('demo')
      .description(
        'what `npm start` runs: the platform on the configured stores (embedded by default), with a demo chain loaded through its API on an empty data directory',
      ),
  )
    .option('--shoppers <n>', 'demo shoppers on the first start', integer('--shoppers'), 20_000)
    .option('--stores <n>', 'demo stores', integer('--stores'), 10)
    .option('--days <n>', 'days of history, ending today', integer('--days'), 90)
    .option('--seed <n>', 'random seed of the demo data', integer('--seed'), 42)
    .action((options: DemoOptions) => runDemo(options));
}

async function runDemo(options: DemoOptions): Promise<void> {
  let ready = false;
  const demoCheck = async (): Promise<ReadinessCheck[]> => [
    ready
      ? { name: 'demo', ok: true }
      : { name: 'demo', ok: false, detail: 'the demo data is being loaded and projected' },
  ];
  await withServingPlatform(
    { ...options, parts: PARTS, readiness: demoCheck },
    async ({ runtime, platform, signal }) => {
      const { eventStore, config, logger } = runtime;
      const client: DemoClient = {
        address: platform.address,
        writeKey: platform.writeKey.value,
        adminKey: platform.adminKey.value,
      };
      const recorded = await readDemo(eventStore);
      let demo = recorded.loaded;
      const empty = !recorded.started && (await holdsOnlyPlatformEvents(runtime.eventStore));
      if (!demo && (recorded.started || empty)) {
        logger.info(
          { shoppers: options.shoppers, stores: options.stores, days: options.days },
          recorded.started
            ? 'the last demo load stopped mid-way: loading it again (what is in stays once)'
            : 'empty data directory: loading the demo chain through the API',
        );
        demo = await loadDemo({
          size: {
            shoppers: options.shoppers,
            stores: options.stores,
            days: options.days,
            seed: options.seed,
          },
          dataDir: config.dataDir,
          eventStore,
          platform,
          client,
          log: logger,
        });
        logger.info(demo, 'demo loaded');
      } else if (!demo) {
        logger.warn(
          { dataDir: config.dataDir },
          'the data directory holds data that is not the demo: serving it without loading the demo',
        );
      }
      ready = true;
      if (signal.aborted) return;
      process.stdout.write(
        await banner(client, demo, !config.secrets.writeKey || !config.secrets.adminKey),
      );
    },
  );
}

const PLATFORM_STREAMS: ReadonlySet<string> = new Set([SYSTEM_STREAM, KEYS_STREAM, AUDIT_STREAM]);

/** Whether the log holds nothing a user sent: only what a start writes itself (its key and system streams). */
async function holdsOnlyPlatformEvents(eventStore: EventStore): Promise<boolean> {
  for await (const event of eventStore.readAll({ maxCount: 1000 }))
    if (!PLATFORM_STREAMS.has(event.stream)) return false;
  return true;
}

/** The address, the keys and five commands to paste; the profile ids are picked from the segment's members now. */
async function banner(
  client: DemoClient,
  demo: DemoLoaded | undefined,
  localKeys: boolean,
): Promise<string> {
  const lines = [
    '',
    `Tandem is ready at ${client.address}  (API docs: ${client.address}/docs)`,
    '',
    `  export TANDEM=${client.address}`,
    `  export WRITE_KEY=${client.writeKey}`,
    `  export ADMIN_KEY=${client.adminKey}`,
    localKeys
      ? '  (local-only keys, generated into the data directory: set TANDEM_WRITE_KEY and TANDEM_ADMIN_KEY, or use `tandem keys`, anywhere else)'
      : '  (the keys from TANDEM_WRITE_KEY and TANDEM_ADMIN_KEY)',
    '',
  ];
  if (!demo) return `${lines.join('\n')}\n`;
  const [shopper, erased] = await members(client, demo.segmentId);
  const auth = '-H "Authorization: Bearer $ADMIN_KEY"';
  const json = `${auth} -H 'content-type: application/json'`;
  lines.push(
    `Demo chain: ${demo.size.shoppers} shoppers, ${demo.size.stores} stores, ${demo.size.days} days (${demo.calls} tracking calls, ${demo.receipts} POS receipts). Try:`,
    '',
    '# 1. Showroomers: browsed online, then bought the same category in a store within 7 days',
    `curl -s ${json} "$TANDEM/v1/segments/preview" -d '${JSON.stringify({ condition: SHOWROOMERS })}'`,
    '',
    '# 2. Export the members of the saved Showroomers segment who consented to marketing e-mail',
    `curl -s ${auth} "$TANDEM/v1/segments/${demo.segmentId}/members?purpose=marketing_email&format=csv"`,
    '',
    "# 3. A showroomer's recommendations for the store they visit most",
    `curl -s ${auth} "$TANDEM/v1/profiles/${shopper}/recommendations?limit=5&context=in_store"`,
    '',
    '# 4. SQL: orders and revenue by channel',
    `curl -s ${json} "$TANDEM/v1/sql" -d '{"query":"SELECT channel, count() AS orders, sum(revenue) AS revenue FROM orders GROUP BY channel ORDER BY channel"}'`,
    '',
    '# 5. File an erasure request for another showroomer, then follow it with GET /v1/privacy/requests/{id}',
    `curl -s ${json} "$TANDEM/v1/privacy/requests" -d '{"type":"erasure","identifier":"profile:${erased}"}'`,
    '',
  );
  return `${lines.join('\n')}\n`;
}

/** Two members of the segment who consented to personalisation (the second to erase), read through the API. */
async function members(client: DemoClient, segmentId: string): Promise<[string, string]> {
  const response = await fetch(
    `${client.address}/v1/segments/${segmentId}/members?purpose=personalization&format=ndjson`,
    { headers: { authorization: `Bearer ${client.adminKey}` } },
  );
  if (!response.ok)
    throw new Error(`the segment's members answered ${response.status}: ${await response.text()}`);
  const ids = (await response.text())
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => (JSON.parse(line) as { profile_id: string }).profile_id);
  if (ids.length < 2)
    throw new Error(
      `the demo segment has ${ids.length} consenting member(s); the demo needs two: start it with more --shoppers`,
    );
  return [ids[0] as string, ids[ids.length - 1] as string];
}

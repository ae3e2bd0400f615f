/**
 * `npm run bench -- identity`: the identity resolver over a fixture chain's
 * log, and the profiles it makes scored against the generator's truth.
 *
 * 1. Throughput: the fixture clickstream and receipts go through the real
 *    ingest pipeline (in process, no HTTP) into the LMDB log; a fresh
 *    resolver then catches up over it, its decisions appended and durable.
 *    Baseline: a bare `readAll` of the same log touching each event's
 *    identifiers. Beside it, the decide-only rate: the graph alone over the
 *    same facts, already in memory.
 * 2. Quality: pairwise precision and recall of the profiles against
 *    `truth.ndjson`, with the recall the evidence allows at best beside it,
 *    so a reader sees how much of the missing recall is the data's.
 * 3. Memory: synthetic profiles of six identifiers, in a child process with
 *    a clean heap (`identity-memory.child.ts`), against a bare Map of the
 *    same hashes.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openRuntime, type Runtime } from '../cli/runtime.js';
import type { EventStore } from '../eventstore/event-store.js';
import { DATASET_FILES, generateDataset } from '../fixtures/generate.js';
import { LOCALES } from '../fixtures/locales.js';
import { type IdentityInput, identityInput } from '../identity/fact.js';
import { IdentityGraph } from '../identity/graph.js';
import { openResolver } from '../identity/resolver.js';
import { IdentifierHasher } from '../privacy/identifiers.js';
import type { IdentityRules } from '../schemas/identity.js';
import { IN_FLIGHT, ingestFixtures, timed } from './fixture-log.js';
import {
  describeQuality,
  type Quality,
  readTruth,
  scoreQuality,
  type Truth,
  UnionFind,
} from './identity-quality.js';
import { type BenchOptions, formatBenchReport, formatRate } from './report.js';

const SHOPPERS = 100_000;
const PROFILES = 1_000_000;
const SEED = 3;
// Known secrets, so the truth's values can be hashed the way ingest hashed them.
const HASH_SECRET = createHash('sha256').update('tandem-bench-identity-hash').digest('hex');
const MASTER_KEY = createHash('sha256').update('tandem-bench-identity-master').digest('hex');

const MIN_FACTS_PER_SECOND = 200_000;
/** For a million profiles; scaled with them. */
const MAX_HEAP_MB = 1024;
const CATCH_UP = 'resolver catch-up from the LMDB log';

/** Runs the benchmark and returns the printed report; `scale` shrinks the shoppers and the synthetic profiles. */
export async function runIdentityBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const shoppers = Math.max(200, Math.round(SHOPPERS * scale));
  const profiles = Math.max(1000, Math.round(PROFILES * scale));
  const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-identity-'));
  try {
    const fixtures = join(dir, 'fixtures');
    const manifest = await generateDataset({ shoppers, seed: SEED }, fixtures);
    const countryCode = LOCALES[manifest.options.locale].countryCode;
    const truth = await readTruth(
      join(fixtures, DATASET_FILES.truth),
      countryCode,
      new IdentifierHasher(Buffer.from(HASH_SECRET, 'hex')),
    );
    // The platform's own wiring on the embedded log; TANDEM_IDENTITY_RULES is kept, to try rules against the truth.
    const runtime = await openRuntime({
      ...process.env,
      TANDEM_DATA_DIR: join(dir, 'data'),
      TANDEM_EVENTSTORE_URL: '',
      TANDEM_HASH_SECRET: HASH_SECRET,
      TANDEM_MASTER_KEY: MASTER_KEY,
      TANDEM_DEFAULT_PHONE_COUNTRY_CODE: countryCode,
      TANDEM_LOG_LEVEL: process.env.TANDEM_LOG_LEVEL ?? 'warn',
    });
    let run: LogRun;
    try {
      run = await measureLog(runtime, fixtures, truth);
    } finally {
      await runtime.close();
    }
    const memory: MemoryRun = {
      ours: await memoryChild('graph', profiles),
      raw: await memoryChild('raw', profiles),
    };
    const file = runtime.config.identityRulesFile;
    const rules = file ? `identity rules from ${file}` : 'default identity rules';
    return formatReport({ shoppers, profiles, rules }, run, memory);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface MemoryRun {
  readonly ours: MemoryFigures;
  readonly raw: MemoryFigures;
}

function formatReport(
  setup: { shoppers: number; profiles: number; rules: string },
  run: LogRun,
  memory: MemoryRun,
): string {
  const heapTarget = MAX_HEAP_MB * (setup.profiles / PROFILES);
  const heapRow = `heap, ${formatRate(setup.profiles)} profiles of 6 identifiers`;
  return [
    formatBenchReport(
      `identity: ${formatRate(setup.shoppers)} shoppers (seed ${SEED}), ${formatRate(run.facts)} facts in the log, ${setup.rules}; ${formatRate(setup.profiles)} synthetic profiles`,
      [
        { name: CATCH_UP, unit: 'facts/s', ours: run.resolverRate, raw: run.rawRate },
        { name: heapRow, unit: 'MB', ours: memory.ours.heapMB, raw: memory.raw.heapMB },
      ],
      [{ row: CATCH_UP, minOurs: MIN_FACTS_PER_SECOND }],
    ),
    `target ${heapRow}: < ${formatRate(heapTarget)} MB (1,024 MB for 1M profiles, scaled) — ${memory.ours.heapMB < heapTarget ? 'met' : 'NOT met'}`,
    `decide only: ${formatRate(run.decideRate)} facts/s — a fresh IdentityGraph over the same facts, read into memory first (no log, no appends).`,
    "raw = a bare readAll of the same log touching each event's identifiers; ours reads it too, decides, and appends",
    `${formatRate(run.decisions)} decisions until durable (${formatRate(run.profiles)} profiles, ${formatRate(run.identifiers)} identifiers).`,
    `log: ${formatRate(run.ingested.calls)} tracking calls and ${formatRate(run.ingested.receipts)} receipts ingested in process (${IN_FLIGHT} requests in flight) at ${formatRate(run.ingested.rate)} events/s.`,
    `heap = V8 heap used after a full GC plus buffers outside it, less the empty process's: ${formatRate((memory.ours.heapMB * 2 ** 20) / memory.ours.profiles)} bytes a profile`,
    '(device, account and email online; member card, phone and card token at a till; then phone + account merging the two);',
    'raw = the same hashes in a bare Map to a profile number.',
    '',
    ...describeQuality(run.quality),
  ].join('\n');
}

interface LogRun {
  readonly ingested: { calls: number; receipts: number; rate: number };
  readonly facts: number;
  readonly rawRate: number;
  readonly resolverRate: number;
  readonly decideRate: number;
  readonly decisions: number;
  readonly profiles: number;
  readonly identifiers: number;
  readonly quality: Quality;
}

/** Ingests the fixtures, then reads the log bare, decides it in memory, and runs the resolver over it. */
async function measureLog(runtime: Runtime, fixtures: string, truth: Truth): Promise<LogRun> {
  const store = runtime.eventStore;
  const ingested = await ingestFixtures(runtime, fixtures);
  // Untimed first pass: warms the page cache for the timed reads, and collects the evidence.
  const evidence = await connectedByFacts(store, truth.sharedHashes);
  const raw = await timed(() => countFacts(store));
  // Before the resolver appends its decisions, so every pass reads the same log.
  const decideRate = await decideOnlyRate(store, runtime.identityRules);
  const resolved = await resolveAndScore(runtime, truth, evidence);
  return {
    ingested,
    facts: raw.value,
    rawRate: raw.value / raw.seconds,
    resolverRate: resolved.status.facts / resolved.seconds,
    decideRate,
    decisions: resolved.status.decisions,
    profiles: resolved.status.profiles,
    identifiers: resolved.status.identifiers,
    quality: resolved.quality,
  };
}

/** A fresh resolver's timed catch-up over the log, and its profiles scored; the graph is garbage after. */
async function resolveAndScore(runtime: Runtime, truth: Truth, evidence: UnionFind) {
  const resolver = await openResolver({
    eventStore: runtime.eventStore,
    rules: runtime.identityRules,
  });
  const caughtUp = await timed(() => resolver.catchUp());
  return {
    status: caughtUp.value,
    seconds: caughtUp.seconds,
    quality: scoreQuality(resolver.graph, truth, evidence),
  };
}

/** Facts/s of a fresh graph over every resolver input of the log, read into memory first. */
async function decideOnlyRate(store: EventStore, rules: IdentityRules): Promise<number> {
  const inputs: IdentityInput[] = [];
  for await (const event of store.readAll()) {
    const input = identityInput(event);
    // A deep copy: as decoded, an input holds on to more of its event (1.7 KB an input
    // against 0.75), and 2M of them would not fit in Node's default heap.
    if (input) inputs.push(structuredClone(input));
  }
  const graph = new IdentityGraph(rules);
  const started = performance.now();
  for (const input of inputs) graph.resolve(input);
  return inputs.length / ((performance.now() - started) / 1000);
}

// ---------------------------------------------------------------------------
// Reads

/** The raw baseline: facts (events carrying identifiers) in a bare read of the log. */
async function countFacts(store: EventStore): Promise<number> {
  let facts = 0;
  for await (const event of store.readAll()) {
    const identifiers = (event.data as { identifiers?: unknown }).identifiers;
    if (Array.isArray(identifiers) && identifiers.length > 0) facts++;
  }
  return facts;
}

/**
 * The recall ceiling's partition: identifiers joined whenever one fact
 * carries them together. Shared devices (per the truth) and never-link
 * placeholders are left out, as a resolver that gets them right must.
 */
async function connectedByFacts(
  store: EventStore,
  sharedHashes: ReadonlySet<string>,
): Promise<UnionFind> {
  const components = new UnionFind();
  for await (const event of store.readAll()) {
    const input = identityInput(event);
    if (input?.kind !== 'fact') continue;
    components.join(
      input.identifiers
        .filter((identifier) => !identifier.neverLink && !sharedHashes.has(identifier.hash))
        .map((identifier) => identifier.hash),
    );
  }
  return components;
}

// ---------------------------------------------------------------------------
// Memory child, helpers

interface MemoryFigures {
  readonly heapMB: number;
  readonly profiles: number;
  readonly identifiers: number;
  readonly seconds: number;
}

/** Runs `identity-memory.child.js` in a fresh process and returns what it printed. */
async function memoryChild(mode: 'graph' | 'raw', profiles: number): Promise<MemoryFigures> {
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      // Room above the target, so a graph over it is measured rather than killed.
      '--max-old-space-size=8192',
      fileURLToPath(new URL('./identity-memory.child.js', import.meta.url)),
      mode,
      String(profiles),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`identity-memory.child (${mode}) exited with ${code}`);
  return JSON.parse(out) as MemoryFigures;
}

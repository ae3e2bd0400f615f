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
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openIngest } from '../cli/platform.js';
import { openRuntime, type Runtime } from '../cli/runtime.js';
import type { EventStore } from '../eventstore/event-store.js';
import { DATASET_FILES, generateDataset } from '../fixtures/generate.js';
import { LOCALES } from '../fixtures/locales.js';
import { TruthRecord } from '../fixtures/truth.js';
import { type IdentityInput, identityInput } from '../identity/fact.js';
import { IdentityGraph } from '../identity/graph.js';
import { openResolver } from '../identity/resolver.js';
import { IdentifierHasher, normaliseIdentifier } from '../privacy/identifiers.js';
import type { IdentityRules } from '../schemas/identity.js';
import { PosReceipt } from '../schemas/pos.js';
import { SegmentBatch } from '../schemas/segment.js';
import { type BenchOptions, formatBenchReport, formatRate } from './report.js';

const SHOPPERS = 100_000;
const PROFILES = 1_000_000;
const SEED = 3;
const IN_FLIGHT = 16;
const RECEIPTS_PER_CALL = 500;
// Known secrets, so the truth's values can be hashed the way ingest hashed them.
const HASH_SECRET = createHash('sha256').update('tandem-bench-identity-hash').digest('hex');
const MASTER_KEY = createHash('sha256').update('tandem-bench-identity-master').digest('hex');

const MIN_FACTS_PER_SECOND = 200_000;
const MIN_PRECISION = 0.995;
const MIN_RECALL = 0.95;
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
    const truth = await readTruth(join(fixtures, DATASET_FILES.truth), countryCode);
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
// Ingest and reads

/** The fixture files through the ingestor, as the HTTP routes would call it, several requests in flight. */
async function ingestFixtures(runtime: Runtime, fixtures: string) {
  const ingest = await openIngest(runtime);
  const started = performance.now();
  let calls = 0;
  let receipts = 0;
  try {
    await pump(lines(join(fixtures, DATASET_FILES.clickstream)), async (line) => {
      const body = SegmentBatch.parse(JSON.parse(line));
      // One source per request, as the route decides it from the first call.
      const kind = body.batch[0]?.context?.app === undefined ? 'web' : 'app';
      // Received when sent: what a live server would have seen, so skew correction keeps the fixture's times.
      const receivedAt = Date.parse(body.sentAt ?? (body.batch.at(-1)?.timestamp as string));
      const result = await ingest.ingestor.tracking(body, receivedAt, { kind, id: 'bench' });
      // Added after the await: `calls += await …` would add to a stale total under concurrency.
      calls += result.accepted;
    });
    await pump(
      chunks(lines(join(fixtures, DATASET_FILES.receipts)), RECEIPTS_PER_CALL),
      async (batch) => {
        const parsed = batch.map((line) => PosReceipt.parse(JSON.parse(line)));
        const receivedAt = Date.parse((parsed.at(-1) as PosReceipt).occurredAt);
        const result = await ingest.ingestor.receipts(parsed, receivedAt, 'bench-pos');
        receipts += result.accepted;
      },
    );
  } finally {
    await ingest.close();
  }
  return { calls, receipts, rate: (calls + receipts) / ((performance.now() - started) / 1000) };
}

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
// Quality

interface Truth {
  /** How many people the truth names. */
  readonly people: number;
  /** Identifier hash → the person's number. */
  readonly personOf: ReadonlyMap<string, number>;
  /** Person → the shared devices (numbers) they used. */
  readonly devicesOf: ReadonlyMap<number, readonly number[]>;
  readonly sharedDevices: readonly { hash: string; people: number }[];
  readonly sharedHashes: ReadonlySet<string>;
}

/** The truth file with every value normalised and hashed as ingest does it. */
async function readTruth(file: string, defaultCountryCode: string): Promise<Truth> {
  const hasher = new IdentifierHasher(Buffer.from(HASH_SECRET, 'hex'));
  const hashOf = (type: string, value: string) => {
    const normalised = normaliseIdentifier(type, value, { defaultCountryCode });
    return normalised.ok ? hasher.hash(type, normalised.value).hash : undefined;
  };
  const people = new Map<string, number>();
  const numberOf = (personId: string) => {
    const known = people.get(personId);
    if (known !== undefined) return known;
    people.set(personId, people.size);
    return people.size - 1;
  };
  const personOf = new Map<string, number>();
  const devicesOf = new Map<number, number[]>();
  const sharedDevices: { hash: string; people: number }[] = [];
  for await (const line of lines(file)) {
    const record = TruthRecord.parse(JSON.parse(line));
    if (record.kind === 'person') {
      const person = numberOf(record.personId);
      for (const { type, value } of record.identifiers) {
        const hash = hashOf(type, value);
        if (hash) personOf.set(hash, person);
      }
      continue;
    }
    const hash = hashOf(record.type, record.value) as string;
    for (const personId of record.personIds) {
      const person = numberOf(personId);
      devicesOf.set(person, [...(devicesOf.get(person) ?? []), sharedDevices.length]);
    }
    sharedDevices.push({ hash, people: record.personIds.length });
  }
  return {
    people: people.size,
    personOf,
    devicesOf,
    sharedDevices,
    sharedHashes: new Set(sharedDevices.map((device) => device.hash)),
  };
}

interface Quality {
  readonly scored: number;
  readonly people: number;
  readonly profiles: number;
  /** Truth identifiers in no profile (never in the log, or never linkable). */
  readonly absent: number;
  /** Identifiers in profiles that the truth does not know: should be 0. */
  readonly unknown: number;
  readonly precision: number;
  readonly recall: number;
  readonly ceiling: { readonly precision: number; readonly recall: number };
  readonly impure: number;
  readonly impureBySharedDevice: number;
  /** Devices of one person that the resolver detached as shared. */
  readonly ownDevicesShared: number;
  readonly traps: {
    total: number;
    detached: number;
    inside: number;
    alone: number;
    absent: number;
  };
}

/**
 * Pairwise scores over the truth's identifiers (shared devices left out),
 * from counts: the pairs inside a group of n are n(n−1)/2, so summing over
 * profiles, people and their intersections gives the predicted, true and
 * correct pairs without listing a single pair.
 */
function scoreQuality(graph: IdentityGraph, truth: Truth, evidence: UnionFind): Quality {
  const people = truth.people;
  const person: number[] = [];
  const profile: number[] = [];
  const component: number[] = [];
  let profiles = 0;
  let unknown = 0;
  let impure = 0;
  let impureBySharedDevice = 0;
  let ownDevicesShared = 0;
  let ordinal = 0;
  for (const membership of graph.memberships()) {
    const index = ordinal++;
    const who = new Set<number>();
    let holdsSharedDevice = false;
    for (const key of membership.identifiers) {
      const hash = key.slice(key.indexOf(':') + 1);
      if (truth.sharedHashes.has(hash)) {
        holdsSharedDevice = true;
        continue;
      }
      const owner = truth.personOf.get(hash);
      if (owner === undefined) {
        unknown++;
        continue;
      }
      person.push(owner);
      profile.push(index);
      // An identifier no fact carried has a component of its own.
      component.push(evidence.of(hash) ?? -person.length);
      who.add(owner);
    }
    if (who.size > 0) profiles++;
    if (who.size > 1) {
      impure++;
      if (holdsSharedDevice || shareADevice(who, truth)) impureBySharedDevice++;
    }
    // A shared profile holds one identifier: only those need the (costlier) view.
    if (
      membership.identifiers.length === 1 &&
      who.size === 1 &&
      graph.profile(membership.id)?.shared
    )
      ownDevicesShared++;
  }
  const truePairs = pairs(person);
  const both = (group: readonly number[]) =>
    group.map((g, i) => g * people + (person[i] as number));
  return {
    scored: person.length,
    people: new Set(person).size,
    profiles,
    absent: truth.personOf.size - person.length,
    unknown,
    precision: ratio(pairs(both(profile)), pairs(profile)),
    recall: ratio(pairs(both(profile)), truePairs),
    ceiling: {
      precision: ratio(pairs(both(component)), pairs(component)),
      recall: ratio(pairs(both(component)), truePairs),
    },
    impure,
    impureBySharedDevice,
    ownDevicesShared,
    traps: trapOutcomes(graph, truth),
  };
}

/** Where each device used by two or more people (truth) ended up. */
function trapOutcomes(graph: IdentityGraph, truth: Truth): Quality['traps'] {
  const outcome = { total: 0, detached: 0, inside: 0, alone: 0, absent: 0 };
  for (const device of truth.sharedDevices) {
    if (device.people < 2) continue;
    outcome.total++;
    const id = graph.profileOf(device.hash);
    const view = id === undefined ? undefined : graph.profile(id);
    if (!view) outcome.absent++;
    else if (view.shared) outcome.detached++;
    else if (view.identifiers.length > 1) outcome.inside++;
    else outcome.alone++;
  }
  return outcome;
}

function shareADevice(people: ReadonlySet<number>, truth: Truth): boolean {
  const used = new Set<number>();
  for (const person of people)
    for (const device of truth.devicesOf.get(person) ?? []) {
      if (used.has(device)) return true;
      used.add(device);
    }
  return false;
}

function describeQuality(q: Quality): string[] {
  const f1 = (2 * q.precision * q.recall) / (q.precision + q.recall || 1);
  const target = (name: string, want: string, ok: boolean) =>
    `target ${name}: ${want} — ${ok ? 'met' : 'NOT met'}`;
  return [
    `quality vs truth.ndjson, pairwise over ${formatRate(q.scored)} identifiers of ${formatRate(q.people)} people in ${formatRate(q.profiles)} profiles`,
    `(left out: shared devices; ${formatRate(q.absent)} truth identifiers in no profile; ${formatRate(q.unknown)} identifiers unknown to the truth)`,
    `  precision ${q.precision.toFixed(4)}, recall ${q.recall.toFixed(4)}, F1 ${f1.toFixed(4)}`,
    `  recall ceiling ${q.ceiling.recall.toFixed(4)} (its precision ${q.ceiling.precision.toFixed(4)}); our recall is ${(q.recall / q.ceiling.recall).toFixed(4)} of it.`,
    '  The ceiling joins identifiers whenever a fact carries them together (shared devices and never-link',
    "  values left out): recall lost below it is the resolver's, above it the data's.",
    `  impure profiles (identifiers of 2+ people): ${formatRate(q.impure)}; caused by a shared device: ${formatRate(q.impureBySharedDevice)}`,
    '  (the profile holds a truth shared device, or two of its people used the same one)',
    `  devices used by 2+ people (truth): ${formatRate(q.traps.total)} — detached as shared ${q.traps.detached},`,
    `  inside a profile with other identifiers ${q.traps.inside}, alone ${q.traps.alone}, in no profile ${q.traps.absent}`,
    `  one person's devices detached as shared: ${formatRate(q.ownDevicesShared)}`,
    target('precision', `>= ${MIN_PRECISION}`, q.precision >= MIN_PRECISION),
    target('recall', `>= ${MIN_RECALL}`, q.recall >= MIN_RECALL),
    target('impure profiles caused by a shared device', '0', q.impureBySharedDevice === 0),
  ];
}

/** The pairs inside each group: Σ n(n−1)/2 over the groups' sizes. */
function pairs(groups: Iterable<number>): number {
  const sizes = new Map<number, number>();
  for (const group of groups) sizes.set(group, (sizes.get(group) ?? 0) + 1);
  let total = 0;
  for (const n of sizes.values()) total += (n * (n - 1)) / 2;
  return total;
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 1 : part / whole;
}

/** Union-find over identifier hashes. */
class UnionFind {
  private readonly index = new Map<string, number>();
  private readonly parent: number[] = [];

  /** Puts every hash in one component (a single hash gets its own). */
  join(hashes: readonly string[]): void {
    let first = -1;
    for (const hash of hashes) {
      const root = this.root(this.node(hash));
      if (first < 0) first = root;
      else if (root !== first) this.parent[root] = first;
    }
  }

  /** The component's number, or undefined for a hash never joined. */
  of(hash: string): number | undefined {
    const node = this.index.get(hash);
    return node === undefined ? undefined : this.root(node);
  }

  private node(hash: string): number {
    let node = this.index.get(hash);
    if (node === undefined) {
      node = this.parent.push(this.parent.length) - 1;
      this.index.set(hash, node);
    }
    return node;
  }

  private root(node: number): number {
    let root = node;
    while (this.parent[root] !== root) root = this.parent[root] as number;
    for (let at = node; at !== root; ) {
      const next = this.parent[at] as number;
      this.parent[at] = root;
      at = next;
    }
    return root;
  }
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

/** The lines of a text file, one at a time. */
async function* lines(file: string): AsyncGenerator<string> {
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity }))
    if (line.length > 0) yield line;
}

async function* chunks<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of items) {
    chunk.push(item);
    if (chunk.length === size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** Works through the items with IN_FLIGHT calls at once (an async generator queues concurrent `next` calls). */
async function pump<T>(items: AsyncIterable<T>, work: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.asyncIterator]();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let next = await iterator.next(); !next.done; next = await iterator.next())
        await work(next.value);
    }),
  );
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await run();
  return { value, seconds: (performance.now() - started) / 1000 };
}

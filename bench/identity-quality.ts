/**
 * The quality half of the identity benchmark: the generator's truth read and
 * hashed as ingest hashes it, and the resolver's profiles scored against it —
 * pairwise precision and recall over identifiers, the recall the evidence
 * allows at best, impure profiles, and where the shared devices ended up.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { TruthRecord } from '../fixtures/truth.js';
import type { IdentityGraph } from '../identity/graph.js';
import { type IdentifierHasher, normaliseIdentifier } from '../privacy/identifiers.js';
import { formatRate } from './report.js';

const MIN_PRECISION = 0.995;
const MIN_RECALL = 0.95;

export interface Truth {
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
export async function readTruth(
  file: string,
  defaultCountryCode: string,
  hasher: IdentifierHasher,
): Promise<Truth> {
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
  for await (const line of createInterface({
    input: createReadStream(file),
    crlfDelay: Infinity,
  })) {
    if (line.length === 0) continue;
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

export interface Quality {
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
export function scoreQuality(graph: IdentityGraph, truth: Truth, evidence: UnionFind): Quality {
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

export function describeQuality(q: Quality): string[] {
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
export class UnionFind {
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

/**
 * The identity graph's state: identifiers as nodes (an index into column
 * arrays, keyed by their hash, which already encodes the type), profiles as
 * indexes too; a profile holds its nodes and the links that joined them
 * (pairs of nodes, in order), so a split can replay its own links without
 * the log. `apply(event)` is the only way membership, consent and traits
 * change; what only facts tell (first/last seen, store visits, what a device
 * brought) is kept beside it. The decisions live in `graph.ts`, applying
 * them in `graph.evolve.ts`, snapshots in `graph.snapshot.ts`. Internal to
 * identity/: other folders use `IdentityGraph`.
 */
import { createHash } from 'node:crypto';
import type { Identifier } from '../schemas/identifier.js';
import type { ConsentSource, IdentityEvent, IdentityRules } from '../schemas/identity.js';
import { evolve } from './graph.evolve.js';
import { type GraphSnapshot, snapshotOf } from './graph.snapshot.js';
import { HashIndex } from './hash-index.js';

export const NEVER_LINK = 1;
export const SHARED = 2;
export const FORGOTTEN = 4;

export const FIRST_ONLINE = 0;
const LAST_ONLINE = 1;
export const FIRST_OFFLINE = 2;
const LAST_OFFLINE = 3;

export interface ConsentState {
  readonly granted: boolean;
  readonly at: number;
  readonly source: string;
}

/** A profile as the API shows it. */
export interface ProfileView {
  readonly id: string;
  readonly identifiers: Identifier[];
  /** A profile of one shared identifier (a family tablet, a demo device): it never links. */
  readonly shared: boolean;
  readonly consent: Record<string, { granted: boolean; at: string; source: string }>;
  readonly traits: Record<string, unknown>;
  readonly seen: Partial<Record<'online' | 'offline', { first: string; last: string }>>;
}

/** A profile's id from its index: `prf_` and the index in base 36. */
export function profileIdOf(index: number): string {
  return `prf_${index.toString(36)}`;
}

/** A profile's index from its id. */
export function profileIndexOf(id: string): number {
  return Number.parseInt(id.slice(4), 36);
}

/** The columns of the graph and the small operations on them that deciding and applying share. */
export class GraphState {
  // Nodes (identifiers), by index.
  /** Hash → node, and node → hash. */
  index = new HashIndex();
  // Typed columns by node (a JS array of numbers costs twice to eight times as much).
  nodeType = new Uint8Array(1024);
  nodeProfile = new Int32Array(1024);
  nodeFlags = new Uint8Array(1024);
  /** Weak node → how many new strong identifiers it brought that its profile could not take. */
  readonly foreignStrong = new Map<number, number>();
  /** Weak node → how often it was caught bridging two identified profiles. */
  readonly conflicts = new Map<number, number>();
  /** Node → nodes an operator said are other people. */
  readonly apart = new Map<number, number[]>();

  // Identifier types, interned.
  readonly typeNames: string[] = [];
  readonly typeIndex = new Map<string, number>();

  // Profiles, by index.
  readonly members: (number[] | undefined)[] = [];
  /** Pairs of nodes, in the order their links were made. */
  readonly links: (number[] | undefined)[] = [];
  readonly absorbedInto = new Map<number, number>();
  readonly sharedProfiles = new Set<number>();
  readonly consent: (Map<string, ConsentState> | undefined)[] = [];
  readonly traits: (Record<string, unknown> | undefined)[] = [];
  /** Four per profile: first/last online, first/last offline (ms; NaN for never). */
  readonly seen: number[] = [];
  /** Per profile, visits by store as a flat `[store, count, store, count…]` (a Map each cost 4× more). */
  readonly storeVisits: (StoreVisits | undefined)[] = [];
  /** Store ids, interned: each fact brings its own copy of the string, and a profile's visits would keep it. */
  private readonly storeNames = new Map<string, string>();
  /** Merge refusals already recorded, so a repeated conflict is explained once. */
  readonly refusals = new Set<string>();
  seq = 0;

  constructor(readonly rules: IdentityRules) {}

  // Reading

  get profileCount(): number {
    let count = 0;
    for (const members of this.members) if (members && members.length > 0) count++;
    return count;
  }

  get identifierCount(): number {
    return this.index.size;
  }

  /** The profile holding an identifier (by its hash), if any. */
  profileOf(hash: string): string | undefined {
    const node = this.index.get(hash);
    if (node === undefined) return undefined;
    const profile = this.nodeProfile[node] as number;
    return profile < 0 ? undefined : profileIdOf(profile);
  }

  /** The profile that absorbed `index`, through every later merge; `index` itself when it was never absorbed. */
  survivorOf(index: number): number {
    let survivor = index;
    for (let next = this.absorbedInto.get(survivor); next !== undefined; ) {
      survivor = next;
      next = this.absorbedInto.get(survivor);
    }
    return survivor;
  }

  /** A profile by id; an absorbed profile's id leads to the profile that absorbed it. */
  profile(id: string): ProfileView | undefined {
    const asked = profileIndexOf(id);
    if (!Number.isInteger(asked) || asked < 0) return undefined;
    const index = this.survivorOf(asked);
    const members = this.members[index];
    if (!members || members.length === 0) return undefined;
    const consent: ProfileView['consent'] = {};
    for (const [purpose, state] of this.consent[index] ?? []) {
      consent[purpose] = {
        granted: state.granted,
        at: new Date(state.at).toISOString(),
        source: state.source,
      };
    }
    const seen: ProfileView['seen'] = {};
    const at = (slot: number) => this.seen[index * 4 + slot] as number;
    if (!Number.isNaN(at(FIRST_ONLINE)))
      seen.online = { first: iso(at(FIRST_ONLINE)), last: iso(at(LAST_ONLINE)) };
    if (!Number.isNaN(at(FIRST_OFFLINE)))
      seen.offline = { first: iso(at(FIRST_OFFLINE)), last: iso(at(LAST_OFFLINE)) };
    return {
      id: profileIdOf(index),
      identifiers: members.map((node) => this.identifier(node)),
      shared: this.sharedProfiles.has(index),
      consent,
      traits: { ...this.traits[index] },
      seen,
    };
  }

  /** Every live profile with its identifiers (sorted), in profile order: what a rebuild must reproduce. */
  *memberships(): Generator<{ id: string; identifiers: string[] }> {
    for (const [index, members] of this.members.entries()) {
      if (!members || members.length === 0) continue;
      yield {
        id: profileIdOf(index),
        identifiers: members.map((node) => this.identifierKey(node)).sort(),
      };
    }
  }

  /** A digest of profiles, memberships, consent and traits, for comparing a rebuild with the live graph. */
  digest(): string {
    const hash = createHash('sha256');
    for (const { id, identifiers } of this.memberships()) {
      const index = profileIndexOf(id);
      const consent = [...(this.consent[index] ?? [])].sort(([a], [b]) => (a < b ? -1 : 1));
      hash.update(
        JSON.stringify([
          id,
          identifiers,
          this.sharedProfiles.has(index),
          consent,
          sortedEntries(this.traits[index]),
        ]),
      );
      hash.update('\n');
    }
    return hash.digest('hex');
  }

  /** Applies one identity event (the resolver's own, or one read back from the log): see `evolve`. */
  apply(event: IdentityEvent): void {
    evolve(this, event);
  }

  /** The whole state as plain data (for msgpack); `IdentityGraph.restore` turns it back into a graph. */
  toSnapshot(): GraphSnapshot {
    return snapshotOf(this);
  }

  node(identifier: Identifier): number {
    const known = this.index.get(identifier.hash);
    if (known !== undefined) return known;
    const node = this.index.add(identifier.hash);
    if (node >= this.nodeType.length) this.growNodeColumns(node + 1);
    this.nodeType[node] = this.internType(identifier.type);
    this.nodeProfile[node] = -1;
    this.nodeFlags[node] = 0;
    return node;
  }

  /** The one copy of store id `id` the graph keeps. */
  storeName(id: string): string {
    const known = this.storeNames.get(id);
    if (known !== undefined) return known;
    this.storeNames.set(id, id);
    return id;
  }

  /** Makes room for at least `nodes` nodes in the typed columns (half as much again, so growth stays cheap). */
  growNodeColumns(nodes: number): void {
    const capacity = Math.max(nodes, Math.ceil(this.nodeType.length * 1.5));
    const grow = <T extends Uint8Array | Int32Array>(column: T, make: (n: number) => T): T => {
      const grown = make(capacity);
      grown.set(column);
      return grown;
    };
    this.nodeType = grow(this.nodeType, (n) => new Uint8Array(n));
    this.nodeProfile = grow(this.nodeProfile, (n) => new Int32Array(n));
    this.nodeFlags = grow(this.nodeFlags, (n) => new Uint8Array(n));
  }

  identifier(node: number): Identifier {
    return {
      type: this.typeNames[this.nodeType[node] as number] as string,
      hash: this.index.hashOf(node),
    };
  }

  identifierKey(node: number): string {
    return `${this.typeNames[this.nodeType[node] as number]}:${this.index.hashOf(node)}`;
  }

  profileIndex(node: number): number {
    return node < 0 ? -1 : (this.nodeProfile[node] as number);
  }

  ensureProfile(index: number): number {
    while (this.members.length <= index) {
      this.members.push([]);
      this.links.push([]);
      this.seen.push(Number.NaN, Number.NaN, Number.NaN, Number.NaN);
    }
    return index;
  }

  /** Puts `nodes` in `profile` (those it already holds stay where they are). */
  place(profile: number, nodes: readonly number[]): void {
    const members = this.members[profile] as number[];
    const added: number[] = [];
    for (const node of nodes) {
      if (!members.includes(node) && !added.includes(node)) added.push(node);
      this.nodeProfile[node] = profile;
    }
    if (added.length > 0) this.members[profile] = members.concat(added);
  }

  /** Adds links (pairs of nodes) to `profile`'s, after the ones it has. */
  addLinks(profile: number, pairs: readonly number[]): void {
    if (pairs.length > 0) this.links[profile] = (this.links[profile] as number[]).concat(pairs);
  }

  removeNode(profile: number, node: number): void {
    if (profile < 0) return;
    this.members[profile] = exactly(
      (this.members[profile] as number[]).filter((other) => other !== node),
    );
    this.links[profile] = linksWithout(this.links[profile] as number[], (x) => x === node);
    this.nodeProfile[node] = -1;
  }

  keepApart(node: number, other: number): void {
    const partners = this.apart.get(node);
    if (!partners) this.apart.set(node, [other]);
    else if (!partners.includes(other)) partners.push(other);
  }

  mergeSightings(survivor: number, absorbed: number): void {
    for (let slot = 0; slot < 4; slot++) {
      const theirs = this.seen[absorbed * 4 + slot] as number;
      if (Number.isNaN(theirs)) continue;
      const ours = this.seen[survivor * 4 + slot] as number;
      const first = slot === FIRST_ONLINE || slot === FIRST_OFFLINE;
      if (Number.isNaN(ours) || (first ? theirs < ours : theirs > ours))
        this.seen[survivor * 4 + slot] = theirs;
    }
    const visits = this.storeVisits[absorbed];
    if (visits) {
      let into = this.storeVisits[survivor];
      for (let i = 0; i < visits.length; i += 2)
        into = countVisits(into, visits[i] as string, visits[i + 1] as number);
      this.storeVisits[survivor] = into;
      this.storeVisits[absorbed] = undefined;
    }
  }

  /** The node of highest priority (ties: the first seen), or -1. */
  best(nodes: readonly number[]): number {
    let best = -1;
    let bestPriority = Number.POSITIVE_INFINITY;
    for (const node of nodes) {
      const priority = this.priorityOf(this.nodeType[node] as number);
      if (priority < bestPriority || (priority === bestPriority && node < best)) {
        best = node;
        bestPriority = priority;
      }
    }
    return best;
  }

  sameProfile(nodes: readonly number[]): boolean {
    const profile = this.nodeProfile[nodes[0] as number];
    for (const node of nodes) if (this.nodeProfile[node] !== profile) return false;
    return true;
  }

  typeCounts(members: readonly number[]): Map<number, number> {
    const counts = new Map<number, number>();
    for (const node of members) {
      const type = this.nodeType[node] as number;
      counts.set(type, (counts.get(type) ?? 0) + 1);
    }
    return counts;
  }

  isIdentified(members: readonly number[]): boolean {
    return members.some((node) => this.isStrong(node));
  }

  isStrong(node: number): boolean {
    return this.typeIsStrong(this.nodeType[node] as number);
  }

  isShared(node: number): boolean {
    return ((this.nodeFlags[node] as number) & SHARED) !== 0;
  }

  // Per-type rules, by interned type.
  readonly strong: boolean[] = [];
  readonly priority: number[] = [];
  readonly max: number[] = [];

  internType(name: string): number {
    const known = this.typeIndex.get(name);
    if (known !== undefined) return known;
    if (this.typeNames.length === 255)
      throw new Error('more than 255 identifier types: the graph stores a type in one byte');
    const index = this.typeNames.push(name) - 1;
    this.typeIndex.set(name, index);
    const rank = this.rules.priority.indexOf(name);
    this.priority[index] = rank < 0 ? this.rules.priority.length : rank;
    this.strong[index] = this.rules.strength[name] === 'strong';
    this.max[index] = this.rules.maxPerProfile[name] ?? Number.POSITIVE_INFINITY;
    return index;
  }

  typeIsStrong(type: number): boolean {
    return this.strong[type] === true;
  }

  priorityOf(type: number): number {
    return this.priority[type] as number;
  }

  priorityOfName(name: string): number {
    return this.priorityOf(this.internType(name));
  }

  maxOf(type: number): number {
    return this.max[type] as number;
  }

  limitDetail(type: number, max: number): string {
    return `a profile holds at most ${max} ${this.typeNames[type]}`;
  }
}

export function describeConsent(state: ConsentState) {
  return {
    granted: state.granted,
    at: iso(state.at),
    source: state.source as ConsentSource,
  };
}

export type StoreVisits = (string | number)[];

/** Adds `count` visits of `storeId`; returns the visits to keep (a new array when the store is new). */
export function countVisits(
  visits: StoreVisits | undefined,
  storeId: string,
  count: number,
): StoreVisits {
  if (!visits) return [storeId, count];
  const at = visits.indexOf(storeId);
  if (at < 0) return visits.concat(storeId, count);
  visits[at + 1] = (visits[at + 1] as number) + count;
  return visits;
}

/**
 * A copy of `array` at its exact length. The arrays a profile keeps (its
 * members, links and store visits) are built at their exact length, by
 * `concat` or this, never grown by `push` or left as `filter` made them: V8
 * leaves room for about half as many again and 16 more when an array grows,
 * which for profiles of a few identifiers made those arrays twice their size
 * (a quarter of the graph's memory at a million profiles).
 */
export function exactly<T>(array: T[]): T[] {
  return array.slice();
}

/** The links (pairs of nodes) of `links` that have neither node dropped, at their exact length. */
export function linksWithout(
  links: readonly number[],
  dropped: (node: number) => boolean,
): number[] {
  const kept: number[] = [];
  for (let i = 0; i < links.length; i += 2) {
    const x = links[i] as number;
    const y = links[i + 1] as number;
    if (!dropped(x) && !dropped(y)) kept.push(x, y);
  }
  return exactly(kept);
}

/** The most visited store; ties go to the smaller id, so the choice is deterministic. */
export function preferredStore(visits: StoreVisits): string {
  let best = '';
  let most = 0;
  for (let i = 0; i < visits.length; i += 2) {
    const store = visits[i] as string;
    const count = visits[i + 1] as number;
    if (count > most || (count === most && store < best)) {
      best = store;
      most = count;
    }
  }
  return best;
}

export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function sortedEntries(value: Record<string, unknown> | undefined): [string, unknown][] {
  return Object.entries(value ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

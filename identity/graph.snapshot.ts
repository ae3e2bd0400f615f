/**
 * Snapshots of the graph: its whole state as plain data (msgpack-friendly),
 * and back. A restart loads one instead of replaying the log.
 */
import type { GraphState, StoreVisits } from './graph.state.js';
import { HashIndex } from './hash-index.js';

/** Bumped when the layout changes; an older snapshot is not read, the log is replayed instead. */
export const SNAPSHOT_VERSION = 2;

export interface GraphSnapshot {
  readonly v: typeof SNAPSHOT_VERSION;
  readonly seq: number;
  readonly typeNames: string[];
  /** 32 bytes a node, in node order (zeroed for a forgotten one). */
  readonly hashes: Uint8Array;
  readonly nodeType: Uint8Array;
  /** Int32 little-endian bytes (msgpack keeps typed arrays as bytes). */
  readonly nodeProfile: Uint8Array;
  readonly nodeFlags: Uint8Array;
  readonly foreignStrong: [number, number][];
  readonly conflicts: [number, number][];
  readonly apart: [number, number[]][];
  /** null for a profile absorbed by another. */
  readonly members: (number[] | null)[];
  readonly links: (number[] | null)[];
  readonly absorbedInto: [number, number][];
  readonly sharedProfiles: number[];
  readonly consent: [number, (readonly [string, boolean, number, string])[]][];
  readonly traits: [number, Record<string, unknown>][];
  readonly seen: number[];
  readonly storeVisits: [number, StoreVisits][];
  readonly refusals: string[];
}

/** The whole state as plain data. */
export function snapshotOf(state: GraphState): GraphSnapshot {
  return {
    v: SNAPSHOT_VERSION,
    seq: state.seq,
    typeNames: state.typeNames,
    hashes: state.index.toBytes(),
    nodeType: state.nodeType.slice(0, state.index.nodes),
    nodeProfile: new Uint8Array(state.nodeProfile.slice(0, state.index.nodes).buffer),
    nodeFlags: state.nodeFlags.slice(0, state.index.nodes),
    foreignStrong: [...state.foreignStrong],
    conflicts: [...state.conflicts],
    apart: [...state.apart],
    members: state.members.map((members) => members ?? null),
    links: state.links.map((links) => links ?? null),
    absorbedInto: [...state.absorbedInto],
    sharedProfiles: [...state.sharedProfiles],
    consent: sparse(state.consent, (states) =>
      [...states].map(([purpose, s]) => [purpose, s.granted, s.at, s.source] as const),
    ),
    traits: sparse(state.traits, (traits) => traits),
    seen: state.seen,
    storeVisits: sparse(state.storeVisits, (visits) => visits),
    refusals: [...state.refusals],
  };
}

/** Fills an empty graph from a snapshot. */
export function loadSnapshot(state: GraphState, snapshot: GraphSnapshot): void {
  if (snapshot.v !== SNAPSHOT_VERSION)
    throw new Error(`unknown identity snapshot version ${snapshot.v}`);
  state.seq = snapshot.seq;
  for (const name of snapshot.typeNames) state.internType(name);
  state.index = HashIndex.fromBytes(snapshot.hashes);
  state.growNodeColumns(snapshot.nodeType.length);
  state.nodeType.set(snapshot.nodeType);
  // Copied to a fresh buffer first: an Int32Array view needs a 4-byte-aligned offset.
  state.nodeProfile.set(new Int32Array(new Uint8Array(snapshot.nodeProfile).buffer));
  state.nodeFlags.set(snapshot.nodeFlags);
  for (const [node, count] of snapshot.foreignStrong) state.foreignStrong.set(node, count);
  for (const [node, count] of snapshot.conflicts) state.conflicts.set(node, count);
  for (const [node, partners] of snapshot.apart) state.apart.set(node, partners);
  for (const members of snapshot.members) state.members.push(members ?? undefined);
  for (const links of snapshot.links) state.links.push(links ?? undefined);
  for (const [from, into] of snapshot.absorbedInto) state.absorbedInto.set(from, into);
  for (const profile of snapshot.sharedProfiles) state.sharedProfiles.add(profile);
  state.consent.length = state.members.length;
  for (const [profile, states] of snapshot.consent)
    state.consent[profile] = new Map(
      states.map(([purpose, granted, at, source]) => [purpose, { granted, at, source }]),
    );
  state.traits.length = state.members.length;
  for (const [profile, traits] of snapshot.traits) state.traits[profile] = traits;
  append(state.seen, snapshot.seen);
  state.storeVisits.length = state.members.length;
  for (const [profile, visits] of snapshot.storeVisits)
    state.storeVisits[profile] = visits.map((value) =>
      typeof value === 'string' ? state.storeName(value) : value,
    );
  for (const refusal of snapshot.refusals) state.refusals.add(refusal);
}

/** Pushes every element (spreading a million arguments would overflow the stack). */
function append<T>(target: T[], source: readonly T[]): void {
  for (const value of source) target.push(value);
}

function sparse<T, R>(values: readonly (T | undefined)[], map: (value: T) => R): [number, R][] {
  const out: [number, R][] = [];
  for (const [index, value] of values.entries())
    if (value !== undefined) out.push([index, map(value)]);
  return out;
}

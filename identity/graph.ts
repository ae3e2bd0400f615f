/**
 * The identity graph: which identifiers belong to which profile, and why.
 *
 * `resolve(input)` decides what a fact or command means for the graph and
 * returns the decisions as identity events; every change of profile
 * membership, consent or traits goes through `apply(event)`, so folding the
 * events a resolver appended rebuilds the same profiles (invariant 3).
 * What only facts tell — first/last seen, store visits, which strong
 * identifiers a device was seen with — is kept beside it, never in events.
 *
 * Memory: identifiers are nodes (an index into column arrays, keyed by their
 * hash, which already encodes the type), profiles are indexes too; a profile
 * holds its nodes and the links that joined them (pairs of nodes, in order),
 * so a split can replay its own links without the log.
 */
import { createHash } from 'node:crypto';
import type { Identifier } from '../schemas/identifier.js';
import {
  IdentityEventTypes as E,
  type Evidence,
  type IdentityEvent,
  type IdentityEventOf,
  type IdentityRules,
  type RuleName,
} from '../schemas/identity.js';
import type { ForgetCommand, IdentityFact, IdentityInput, UnlinkCommand } from './fact.js';

const NEVER_LINK = 1;
const SHARED = 2;
const FORGOTTEN = 4;

const FIRST_ONLINE = 0;
const LAST_ONLINE = 1;
const FIRST_OFFLINE = 2;
const LAST_OFFLINE = 3;

interface ConsentState {
  readonly granted: boolean;
  readonly at: number;
  readonly source: string;
}

interface Refusal {
  readonly rule: RuleName;
  readonly detail: string;
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

export function profileIdOf(index: number): string {
  return `prf_${index.toString(36)}`;
}

export function profileIndexOf(id: string): number {
  return Number.parseInt(id.slice(4), 36);
}

export class IdentityGraph {
  // Nodes (identifiers), by index.
  private readonly nodeByHash = new Map<string, number>();
  private readonly nodeHash: string[] = [];
  private readonly nodeType: number[] = [];
  private readonly nodeProfile: number[] = [];
  private readonly nodeFlags: number[] = [];
  /** Weak node → how many new strong identifiers it brought that its profile could not take. */
  private readonly foreignStrong = new Map<number, number>();
  /** Weak node → how often it was caught bridging two identified profiles. */
  private readonly conflicts = new Map<number, number>();
  /** Node → nodes an operator said are other people. */
  private readonly apart = new Map<number, number[]>();

  // Identifier types, interned.
  private readonly typeNames: string[] = [];
  private readonly typeIndex = new Map<string, number>();

  // Profiles, by index.
  private readonly members: (number[] | undefined)[] = [];
  /** Pairs of nodes, in the order their links were made. */
  private readonly links: (number[] | undefined)[] = [];
  private readonly absorbedInto = new Map<number, number>();
  private readonly sharedProfiles = new Set<number>();
  private readonly consent: (Map<string, ConsentState> | undefined)[] = [];
  private readonly traits: (Record<string, unknown> | undefined)[] = [];
  /** Four per profile: first/last online, first/last offline (ms; NaN for never). */
  private readonly seen: number[] = [];
  /** Per profile, visits by store as a flat `[store, count, store, count…]` (a Map each cost 4× more). */
  private readonly storeVisits: (StoreVisits | undefined)[] = [];
  /** Merge refusals already recorded, so a repeated conflict is explained once. */
  private readonly refusals = new Set<string>();
  private seq = 0;

  /** Decisions of the input being resolved. */
  private out: IdentityEvent[] = [];

  constructor(private readonly rules: IdentityRules) {}

  // -------------------------------------------------------------------------
  // Reading

  get profileCount(): number {
    let count = 0;
    for (const members of this.members) if (members && members.length > 0) count++;
    return count;
  }

  get identifierCount(): number {
    return this.nodeByHash.size;
  }

  /** The profile holding an identifier (by its hash), if any. */
  profileOf(hash: string): string | undefined {
    const node = this.nodeByHash.get(hash);
    if (node === undefined) return undefined;
    const profile = this.nodeProfile[node] as number;
    return profile < 0 ? undefined : profileIdOf(profile);
  }

  /** A profile by id; an absorbed profile's id leads to the profile that absorbed it. */
  profile(id: string): ProfileView | undefined {
    let index = profileIndexOf(id);
    if (!Number.isInteger(index) || index < 0) return undefined;
    for (let next = this.absorbedInto.get(index); next !== undefined; ) {
      index = next;
      next = this.absorbedInto.get(index);
    }
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

  // -------------------------------------------------------------------------
  // Deciding

  /** The decisions a fact or command leads to; they are already applied when this returns. */
  resolve(input: IdentityInput): IdentityEvent[] {
    this.out = [];
    if (input.kind === 'fact') this.fact(input);
    else if (input.kind === 'unlink') this.unlink(input);
    else this.forget(input);
    return this.out;
  }

  private fact(fact: IdentityFact): void {
    const evidence: Evidence = { eventId: fact.eventId, position: fact.position };
    const active: number[] = [];
    const fresh: Identifier[] = [];
    let sharedNode = -1;
    for (const identifier of fact.identifiers) {
      const node = this.nodeByHash.get(identifier.hash);
      if (node === undefined) {
        if (identifier.neverLink) {
          this.emit({
            type: E.ignored,
            seq: this.seq,
            evidence,
            identifier: { type: identifier.type, hash: identifier.hash },
            rule: 'never_link',
          });
        } else if (!fresh.some((other) => other.hash === identifier.hash)) {
          fresh.push({ type: identifier.type, hash: identifier.hash });
        }
        continue;
      }
      const flags = this.nodeFlags[node] as number;
      if (flags & NEVER_LINK) continue;
      if (flags & SHARED) {
        if (sharedNode < 0) sharedNode = node;
        continue;
      }
      if (!active.includes(node)) active.push(node);
    }

    // Devices to blame: caught bridging two identified profiles (contested), or
    // bringing strong identifiers their profile could not take (foreign, once each).
    const contested: number[] = [];
    const foreign: number[] = [];
    if (active.length > 1 && !this.sameProfile(active))
      this.mergeProfilesOf(active, evidence, contested);
    if (fresh.length > 0) this.linkFresh(active, fresh, evidence, contested, foreign);
    for (const identifier of fresh) active.push(this.nodeByHash.get(identifier.hash) as number);
    if (contested.length > 0 || foreign.length > 0) this.detectShared(foreign, contested, evidence);

    const best = this.best(active.filter((node) => !this.isShared(node)));
    const profile = best >= 0 ? this.profileIndex(best) : this.profileIndex(sharedNode);
    if (profile < 0) return;
    this.see(profile, fact);
    if (fact.consent) this.stateConsent(profile, fact.consent, fact.at, fact.sourceKind, evidence);
    if (fact.traits) this.stateTraits(profile, fact.traits, evidence);
    if (fact.channel === 'offline' && fact.storeId)
      this.visitStore(profile, fact.storeId, evidence);
  }

  /** Merges the profiles a fact's known identifiers belong to into the oldest, where the rules allow. */
  private mergeProfilesOf(
    active: readonly number[],
    evidence: Evidence,
    contested: number[],
  ): void {
    const profiles = [...new Set(active.map((node) => this.profileIndex(node)))].sort(
      (a, b) => a - b,
    );
    const survivor = profiles[0] as number;
    for (const other of profiles.slice(1)) {
      const ours = active.filter((node) => this.profileIndex(node) === survivor);
      const theirs = active.filter((node) => this.profileIndex(node) === other);
      const refusal = this.mergeRefusal(survivor, other, ours, theirs);
      if (refusal) {
        for (const side of [ours, theirs])
          if (side.every((node) => !this.isStrong(node))) contested.push(...side);
        const key = `${survivor}|${other}|${refusal.rule}`;
        if (this.refusals.has(key)) continue;
        this.emit({
          type: E.refused,
          profileId: profileIdOf(survivor),
          seq: this.seq,
          evidence,
          ...refusal,
          identifiers: theirs.map((node) => this.identifier(node)),
          otherProfileId: profileIdOf(other),
        });
        continue;
      }
      const moved = (this.members[other] as number[]).map((node) => this.identifier(node));
      const bridge: [Identifier, Identifier] = [
        this.identifier(this.best(ours)),
        this.identifier(this.best(theirs)),
      ];
      const survivorConsent = new Map(this.consent[survivor] ?? []);
      const absorbedConsent = this.consent[other];
      const absorbedTraits = this.traits[other];
      this.emit({
        type: E.merged,
        profileId: profileIdOf(survivor),
        seq: this.seq,
        evidence,
        absorbed: profileIdOf(other),
        identifiers: moved,
        bridge,
      });
      this.emit({
        type: E.absorbed,
        profileId: profileIdOf(other),
        seq: this.seq,
        evidence,
        into: profileIdOf(survivor),
      });
      this.inheritConsent(survivor, survivorConsent, absorbedConsent, evidence);
      this.inheritTraits(survivor, absorbedTraits, evidence);
    }
  }

  private mergeRefusal(
    survivor: number,
    other: number,
    ours: readonly number[],
    theirs: readonly number[],
  ): Refusal | undefined {
    const survivorMembers = this.members[survivor] as number[];
    for (const node of this.members[other] as number[]) {
      const partners = this.apart.get(node);
      if (partners?.some((partner) => this.profileIndex(partner) === survivor))
        return {
          rule: 'kept_apart',
          detail: 'an operator said these identifiers are different people',
        };
    }
    if (
      this.isIdentified(survivorMembers) &&
      this.isIdentified(this.members[other] as number[]) &&
      (ours.every((node) => !this.isStrong(node)) || theirs.every((node) => !this.isStrong(node)))
    ) {
      return {
        rule: 'weak_bridge',
        detail: 'only a device connects two profiles that each have a strong identifier',
      };
    }
    const counts = this.typeCounts(survivorMembers);
    for (const node of this.members[other] as number[]) {
      const type = this.nodeType[node] as number;
      const count = (counts.get(type) ?? 0) + 1;
      counts.set(type, count);
      const max = this.maxOf(type);
      if (count > max) return { rule: 'limit', detail: this.limitDetail(type, max) };
    }
    return undefined;
  }

  /**
   * New identifiers join the profile of the fact's best known identifier,
   * within the limits; the rest start a profile. When only a device connects
   * them to a profile that already has strong identifiers, new strong ones
   * may be someone else's (a guest checkout on the family tablet): they start
   * a profile together. The device is blamed only when one of them could not
   * be the profile's anyway (a second user_id); a second email may be its
   * owner's, and the sharing threshold decides about devices seen with many.
   */
  private linkFresh(
    active: readonly number[],
    fresh: Identifier[],
    evidence: Evidence,
    contested: number[],
    foreign: number[],
  ): void {
    fresh.sort((a, b) => this.priorityOfName(a.type) - this.priorityOfName(b.type));
    const bestKnown = this.best(active);
    if (bestKnown < 0) {
      this.createProfiles(fresh, evidence);
      return;
    }
    const anchor = this.profileIndex(bestKnown);
    const bridge = active.filter((node) => this.profileIndex(node) === anchor);
    if (
      bridge.every((node) => !this.isStrong(node)) &&
      this.isIdentified(this.members[anchor] as number[]) &&
      fresh.some((identifier) => this.typeIsStrong(this.internType(identifier.type)))
    ) {
      // A second account or member card on the device is certainly someone else: blame the device.
      const counts = this.typeCounts(this.members[anchor] as number[]);
      const over = fresh
        .map((identifier) => this.internType(identifier.type))
        .find((type) => (counts.get(type) ?? 0) + 1 > this.maxOf(type));
      this.refuseFresh(
        anchor,
        fresh,
        evidence,
        over === undefined
          ? {
              rule: 'weak_bridge',
              detail:
                'only a device connects these new identifiers to a profile that has strong ones',
            }
          : { rule: 'limit', detail: this.limitDetail(over, this.maxOf(over)) },
      );
      if (over !== undefined) contested.push(...bridge);
      for (const identifier of fresh)
        if (this.typeIsStrong(this.internType(identifier.type))) foreign.push(...bridge);
      return;
    }
    const counts = this.typeCounts(this.members[anchor] as number[]);
    const accepted: Identifier[] = [];
    const refused: Identifier[] = [];
    let refusal: Refusal | undefined;
    for (const identifier of fresh) {
      const type = this.internType(identifier.type);
      const count = counts.get(type) ?? 0;
      const max = this.maxOf(type);
      if (count + 1 > max) {
        refused.push(identifier);
        refusal ??= { rule: 'limit', detail: this.limitDetail(type, max) };
      } else {
        accepted.push(identifier);
        counts.set(type, count + 1);
      }
    }
    if (accepted.length > 0) {
      this.emit({
        type: E.linked,
        profileId: profileIdOf(anchor),
        seq: this.seq,
        evidence,
        identifiers: accepted,
        via: this.identifier(this.best(bridge)),
      });
    }
    if (refusal) this.refuseFresh(anchor, refused, evidence, refusal);
  }

  /** Records why new identifiers were kept out of `anchor`, and gives them a profile of their own. */
  private refuseFresh(
    anchor: number,
    identifiers: readonly Identifier[],
    evidence: Evidence,
    refusal: Refusal,
  ): void {
    this.emit({
      type: E.refused,
      profileId: profileIdOf(anchor),
      seq: this.seq,
      evidence,
      ...refusal,
      identifiers: [...identifiers],
    });
    this.createProfiles(identifiers, evidence, 'refused', anchor);
  }

  /** New profiles for identifiers seen together, as many as the limits need. */
  private createProfiles(
    identifiers: readonly Identifier[],
    evidence: Evidence,
    reason: 'first_seen' | 'refused' = 'first_seen',
    from?: number,
  ): void {
    const [first = [], ...overflow] = this.groupWithinLimits(identifiers);
    const firstId = profileIdOf(this.members.length);
    this.emit({
      type: E.created,
      profileId: firstId,
      seq: this.seq,
      evidence,
      identifiers: first,
      reason,
      ...(from === undefined ? {} : { from: profileIdOf(from) }),
    });
    for (const group of overflow) {
      this.emit({
        type: E.created,
        profileId: profileIdOf(this.members.length),
        seq: this.seq,
        evidence,
        identifiers: group,
        reason: 'refused',
        from: firstId,
      });
    }
    const over = overflow[0]?.[0];
    if (over) {
      const type = this.internType(over.type);
      this.emit({
        type: E.refused,
        profileId: firstId,
        seq: this.seq,
        evidence,
        rule: 'limit',
        detail: this.limitDetail(type, this.maxOf(type)),
        identifiers: overflow.flat(),
      });
    }
  }

  /** Identifiers in groups that each keep within the limits, in order. */
  private groupWithinLimits(identifiers: readonly Identifier[]): Identifier[][] {
    const groups: { identifiers: Identifier[]; counts: Map<number, number> }[] = [];
    for (const identifier of identifiers) {
      const type = this.internType(identifier.type);
      let group = groups.find((candidate) => (candidate.counts.get(type) ?? 0) < this.maxOf(type));
      if (!group) {
        group = { identifiers: [], counts: new Map() };
        groups.push(group);
      }
      group.identifiers.push(identifier);
      group.counts.set(type, (group.counts.get(type) ?? 0) + 1);
    }
    return groups.map((group) => group.identifiers);
  }

  /**
   * Devices that brought too many strong identifiers their profile could not
   * take (a store's demo device), or were caught bridging two identified
   * profiles, become shared.
   */
  private detectShared(
    foreign: readonly number[],
    contested: readonly number[],
    evidence: Evidence,
  ): void {
    const threshold = this.rules.sharedAfterStrong;
    for (const node of foreign) {
      if (this.isShared(node)) continue;
      const count = (this.foreignStrong.get(node) ?? 0) + 1;
      this.foreignStrong.set(node, count);
      if (count > threshold)
        this.markShared(
          node,
          `seen with more than ${threshold} strong identifiers its profile could not take`,
          evidence,
        );
    }
    for (const node of new Set(contested)) {
      if (this.isShared(node)) continue;
      const count = (this.conflicts.get(node) ?? 0) + 1;
      this.conflicts.set(node, count);
      if (count >= this.rules.sharedAfterConflicts) {
        this.markShared(
          node,
          `connected people who each have a strong identifier ${count === 1 ? 'once' : `${count} times`}`,
          evidence,
        );
      }
    }
  }

  private markShared(node: number, detail: string, evidence: Evidence): void {
    const profile = this.profileIndex(node);
    const members = this.members[profile] as number[];
    const alone = members.length === 1;
    const parts = alone ? [] : this.components(profile, [node], []);
    this.emit({
      type: E.shared,
      profileId: profileIdOf(profile),
      seq: this.seq,
      evidence,
      identifier: this.identifier(node),
      rule: 'shared_identifier',
      detail,
      sharedProfileId: profileIdOf(alone ? profile : this.members.length),
    });
    if (parts.length > 1)
      this.splitInto(profile, parts, evidence, {
        rule: 'shared_identifier',
        detail: `without the shared ${this.typeNames[this.nodeType[node] as number]} its identifiers no longer hang together`,
      });
  }

  private unlink(command: UnlinkCommand): void {
    const evidence: Evidence = { eventId: command.eventId, position: command.position };
    const [a, b] = command.identifiers;
    const nodeA = this.nodeByHash.get(a.hash);
    const nodeB = this.nodeByHash.get(b.hash);
    if (nodeA === undefined || nodeB === undefined || nodeA === nodeB) return;
    const profile = this.profileIndex(nodeA);
    const other = this.profileIndex(nodeB);
    const apart: [Identifier, Identifier] = [this.identifier(nodeA), this.identifier(nodeB)];
    const detail = `${command.reason} (${command.requestedBy})`;
    if (profile < 0 && other < 0) return;
    if (profile !== other) {
      this.emit({
        type: E.split,
        profileId: profileIdOf(profile >= 0 ? profile : other),
        seq: this.seq,
        evidence,
        parts: [],
        rule: 'operator',
        detail,
        apart,
      });
      return;
    }
    const parts = this.components(profile, [], [[nodeA, nodeB]]);
    this.splitInto(profile, parts, evidence, { rule: 'operator', detail }, apart);
  }

  private forget(command: ForgetCommand): void {
    const node = this.nodeByHash.get(command.identifier.hash);
    if (node === undefined) return;
    const profile = this.profileIndex(node);
    if (profile < 0) return;
    this.emit({
      type: E.forgotten,
      profileId: profileIdOf(profile),
      seq: this.seq,
      evidence: { eventId: command.eventId, position: command.position },
      identifier: this.identifier(node),
    });
  }

  /**
   * The profile's nodes grouped by its own links, replayed in order, leaving
   * out `without` and never joining nodes kept apart (recorded or `extraApart`).
   * The group holding the profile's first identifier comes first.
   */
  private components(
    profile: number,
    without: readonly number[],
    extraApart: readonly (readonly [number, number])[],
  ): number[][] {
    const members = (this.members[profile] as number[]).filter((node) => !without.includes(node));
    const root = new Map<number, number>(members.map((node) => [node, node]));
    const find = (node: number): number => {
      let current = node;
      while (root.get(current) !== current) current = root.get(current) as number;
      root.set(node, current);
      return current;
    };
    const groupOf = (top: number) => members.filter((node) => find(node) === top);
    const forbidden = (x: number, y: number) =>
      this.apart.get(x)?.includes(y) === true ||
      extraApart.some(([p, q]) => (p === x && q === y) || (p === y && q === x));
    const links = this.links[profile] as number[];
    for (let i = 0; i < links.length; i += 2) {
      const x = links[i] as number;
      const y = links[i + 1] as number;
      if (!root.has(x) || !root.has(y)) continue;
      const rx = find(x);
      const ry = find(y);
      if (rx === ry) continue;
      const left = groupOf(rx);
      const right = groupOf(ry);
      if (left.some((p) => right.some((q) => forbidden(p, q)))) continue;
      root.set(ry, rx);
    }
    const groups = new Map<number, number[]>();
    for (const node of members) {
      const top = find(node);
      const group = groups.get(top);
      if (group) group.push(node);
      else groups.set(top, [node]);
    }
    return [...groups.values()];
  }

  /** Emits the split of `profile` into `parts` (the first keeps the profile), with consent withdrawals carried over. */
  private splitInto(
    profile: number,
    parts: readonly number[][],
    evidence: Evidence,
    why: { rule: 'operator' | 'shared_identifier'; detail: string },
    apart?: [Identifier, Identifier],
  ): void {
    const first = this.members.length;
    const leaving = parts.slice(1).map((nodes, i) => ({
      profileId: profileIdOf(first + i),
      identifiers: nodes.map((node) => this.identifier(node)),
    }));
    this.emit({
      type: E.split,
      profileId: profileIdOf(profile),
      seq: this.seq,
      evidence,
      parts: leaving,
      ...why,
      ...(apart ? { apart } : {}),
    });
    const withdrawals = [...(this.consent[profile] ?? [])].filter(([, state]) => !state.granted);
    for (const part of leaving) {
      this.emit({
        type: E.created,
        profileId: part.profileId,
        seq: this.seq,
        evidence,
        identifiers: part.identifiers,
        reason: 'split',
        from: profileIdOf(profile),
      });
      if (withdrawals.length > 0) {
        this.emit({
          type: E.consent,
          profileId: part.profileId,
          seq: this.seq,
          evidence,
          purposes: Object.fromEntries(
            withdrawals.map(([purpose, state]) => [purpose, describeConsent(state)]),
          ),
        });
      }
    }
  }

  // -------------------------------------------------------------------------
  // Consent, traits, sightings

  private stateConsent(
    profile: number,
    purposes: Readonly<Record<string, boolean>>,
    at: number,
    source: string,
    evidence: Evidence,
  ): void {
    const current = this.consent[profile];
    let changed: Record<string, ReturnType<typeof describeConsent>> | undefined;
    for (const purpose in purposes) {
      const granted = purposes[purpose] as boolean;
      const state = current?.get(purpose);
      if (state && (state.at > at || state.granted === granted)) continue;
      changed ??= {};
      changed[purpose] = describeConsent({ granted, at, source });
    }
    if (changed)
      this.emit({
        type: E.consent,
        profileId: profileIdOf(profile),
        seq: this.seq,
        evidence,
        purposes: changed,
      });
  }

  private inheritConsent(
    survivor: number,
    before: ReadonlyMap<string, ConsentState>,
    absorbed: ReadonlyMap<string, ConsentState> | undefined,
    evidence: Evidence,
  ): void {
    if (!absorbed) return;
    const changed: Record<string, ReturnType<typeof describeConsent>> = {};
    let any = false;
    for (const [purpose, state] of absorbed) {
      const current = before.get(purpose);
      if (current && (current.at >= state.at || current.granted === state.granted)) continue;
      changed[purpose] = describeConsent(state);
      any = true;
    }
    if (any)
      this.emit({
        type: E.consent,
        profileId: profileIdOf(survivor),
        seq: this.seq,
        evidence,
        purposes: changed,
      });
  }

  private stateTraits(
    profile: number,
    traits: Readonly<Record<string, unknown>>,
    evidence: Evidence,
  ): void {
    const current = this.traits[profile];
    let changed: Record<string, unknown> | undefined;
    for (const key in traits) {
      const value = traits[key];
      if (value === undefined || sameJson(current?.[key], value)) continue;
      changed ??= {};
      changed[key] = value;
    }
    if (changed) this.emitTraits(profile, changed, evidence);
  }

  private inheritTraits(
    survivor: number,
    absorbed: Readonly<Record<string, unknown>> | undefined,
    evidence: Evidence,
  ): void {
    if (!absorbed) return;
    const current = this.traits[survivor];
    const missing = Object.entries(absorbed).filter(([key]) => current?.[key] === undefined);
    if (missing.length > 0) this.emitTraits(survivor, Object.fromEntries(missing), evidence);
  }

  private emitTraits(profile: number, traits: Record<string, unknown>, evidence: Evidence): void {
    this.emit({
      type: E.traits,
      profileId: profileIdOf(profile),
      seq: this.seq,
      evidence,
      traits: traits as IdentityEventOf<typeof E.traits>['traits'],
    });
  }

  /** Counts a store visit; the most visited store is the `preferred_store` trait. */
  private visitStore(profile: number, storeId: string, evidence: Evidence): void {
    const visits = this.storeVisits[profile] ?? [];
    this.storeVisits[profile] = visits;
    countVisits(visits, storeId, 1);
    const preferred = preferredStore(visits);
    if (this.traits[profile]?.preferred_store !== preferred)
      this.emitTraits(profile, { preferred_store: preferred }, evidence);
  }

  private see(profile: number, fact: IdentityFact): void {
    const base = profile * 4 + (fact.channel === 'online' ? FIRST_ONLINE : FIRST_OFFLINE);
    const first = this.seen[base] as number;
    const last = this.seen[base + 1] as number;
    if (Number.isNaN(first) || fact.at < first) this.seen[base] = fact.at;
    if (Number.isNaN(last) || fact.at > last) this.seen[base + 1] = fact.at;
  }

  // -------------------------------------------------------------------------
  // Applying decisions: the only place membership, consent and traits change

  /** Applies one identity event (the resolver's own, or one read back from the log). */
  apply(event: IdentityEvent): void {
    this.seq = Math.max(this.seq, event.seq + 1);
    switch (event.type) {
      case E.created: {
        const profile = this.ensureProfile(profileIndexOf(event.profileId));
        if ((this.members[profile] as number[]).length > 0) return; // a split already placed them
        const nodes = event.identifiers.map((identifier) => this.node(identifier));
        const links = this.links[profile] as number[];
        for (const node of nodes.slice(1)) links.push(nodes[0] as number, node);
        this.place(profile, nodes);
        return;
      }
      case E.linked: {
        const profile = this.ensureProfile(profileIndexOf(event.profileId));
        // The new identifiers were seen together: chained to the first, which hangs on `via`,
        // so they stay together if `via` (a device) later turns out to be shared.
        const via = this.node(event.via);
        const nodes = event.identifiers.map((identifier) => this.node(identifier));
        const links = this.links[profile] as number[];
        for (const [i, node] of nodes.entries())
          links.push(i === 0 ? via : (nodes[0] as number), node);
        this.place(profile, nodes);
        return;
      }
      case E.merged: {
        const survivor = profileIndexOf(event.profileId);
        const absorbed = profileIndexOf(event.absorbed);
        const moving = this.members[absorbed] ?? [];
        const links = this.links[survivor] as number[];
        links.push(this.node(event.bridge[0]), this.node(event.bridge[1]));
        for (const link of this.links[absorbed] ?? []) links.push(link);
        this.members[absorbed] = undefined;
        this.links[absorbed] = undefined;
        this.consent[absorbed] = undefined;
        this.traits[absorbed] = undefined;
        this.place(survivor, moving);
        this.absorbedInto.set(absorbed, survivor);
        this.mergeSightings(survivor, absorbed);
        return;
      }
      case E.absorbed:
      case E.ignored:
        if (event.type === E.ignored) {
          const node = this.node(event.identifier);
          this.nodeFlags[node] = (this.nodeFlags[node] as number) | NEVER_LINK;
        }
        return;
      case E.refused:
        if (event.otherProfileId)
          this.refusals.add(
            `${profileIndexOf(event.profileId)}|${profileIndexOf(event.otherProfileId)}|${event.rule}`,
          );
        return;
      case E.shared: {
        const node = this.node(event.identifier);
        this.nodeFlags[node] = (this.nodeFlags[node] as number) | SHARED;
        this.foreignStrong.delete(node);
        this.conflicts.delete(node);
        const own = this.ensureProfile(profileIndexOf(event.sharedProfileId));
        const from = this.nodeProfile[node] as number;
        if (own !== from) {
          this.removeNode(from, node);
          this.place(own, [node]);
        }
        this.sharedProfiles.add(own);
        return;
      }
      case E.split: {
        const profile = profileIndexOf(event.profileId);
        for (const part of event.parts) {
          const target = this.ensureProfile(profileIndexOf(part.profileId));
          const nodes = part.identifiers.map((identifier) => this.node(identifier));
          const inPart = new Set(nodes);
          const links = this.links[profile] as number[];
          const kept: number[] = [];
          const moved = this.links[target] as number[];
          for (let i = 0; i < links.length; i += 2) {
            const x = links[i] as number;
            const y = links[i + 1] as number;
            if (inPart.has(x) && inPart.has(y)) moved.push(x, y);
            else if (!inPart.has(x) && !inPart.has(y)) kept.push(x, y);
          }
          this.links[profile] = kept;
          this.members[profile] = (this.members[profile] as number[]).filter(
            (node) => !inPart.has(node),
          );
          this.place(target, nodes);
        }
        if (event.apart) {
          const a = this.node(event.apart[0]);
          const b = this.node(event.apart[1]);
          this.keepApart(a, b);
          this.keepApart(b, a);
        }
        return;
      }
      case E.forgotten: {
        const node = this.nodeByHash.get(event.identifier.hash);
        if (node === undefined) return;
        this.removeNode(this.nodeProfile[node] as number, node);
        this.nodeByHash.delete(event.identifier.hash);
        this.nodeHash[node] = '';
        this.nodeFlags[node] = FORGOTTEN;
        this.foreignStrong.delete(node);
        this.conflicts.delete(node);
        for (const partner of this.apart.get(node) ?? [])
          this.apart.set(
            partner,
            (this.apart.get(partner) ?? []).filter((other) => other !== node),
          );
        this.apart.delete(node);
        return;
      }
      case E.consent: {
        const profile = this.ensureProfile(profileIndexOf(event.profileId));
        let states = this.consent[profile];
        if (!states) {
          states = new Map();
          this.consent[profile] = states;
        }
        for (const [purpose, state] of Object.entries(event.purposes))
          states.set(purpose, {
            granted: state.granted,
            at: Date.parse(state.at),
            source: state.source,
          });
        return;
      }
      case E.traits: {
        const profile = this.ensureProfile(profileIndexOf(event.profileId));
        this.traits[profile] = { ...this.traits[profile], ...event.traits };
        return;
      }
    }
  }

  private emit(event: IdentityEvent): void {
    this.out.push(event);
    this.apply(event);
  }

  // -------------------------------------------------------------------------
  // Snapshots

  /** The whole state as plain data (for msgpack); `restore` turns it back into a graph. */
  toSnapshot(): GraphSnapshot {
    return {
      v: 1,
      seq: this.seq,
      typeNames: this.typeNames,
      nodeHash: this.nodeHash,
      nodeType: this.nodeType,
      nodeProfile: this.nodeProfile,
      nodeFlags: this.nodeFlags,
      foreignStrong: [...this.foreignStrong],
      conflicts: [...this.conflicts],
      apart: [...this.apart],
      members: this.members.map((members) => members ?? null),
      links: this.links.map((links) => links ?? null),
      absorbedInto: [...this.absorbedInto],
      sharedProfiles: [...this.sharedProfiles],
      consent: sparse(this.consent, (states) =>
        [...states].map(([purpose, s]) => [purpose, s.granted, s.at, s.source] as const),
      ),
      traits: sparse(this.traits, (traits) => traits),
      seen: this.seen,
      storeVisits: sparse(this.storeVisits, (visits) => visits),
      refusals: [...this.refusals],
    };
  }

  static restore(snapshot: GraphSnapshot, rules: IdentityRules): IdentityGraph {
    if (snapshot.v !== 1) throw new Error(`unknown identity snapshot version ${snapshot.v}`);
    const graph = new IdentityGraph(rules);
    graph.seq = snapshot.seq;
    for (const name of snapshot.typeNames) graph.internType(name);
    append(graph.nodeHash, snapshot.nodeHash);
    append(graph.nodeType, snapshot.nodeType);
    append(graph.nodeProfile, snapshot.nodeProfile);
    append(graph.nodeFlags, snapshot.nodeFlags);
    for (const [node, hash] of snapshot.nodeHash.entries())
      if (hash !== '') graph.nodeByHash.set(hash, node);
    for (const [node, count] of snapshot.foreignStrong) graph.foreignStrong.set(node, count);
    for (const [node, count] of snapshot.conflicts) graph.conflicts.set(node, count);
    for (const [node, partners] of snapshot.apart) graph.apart.set(node, partners);
    for (const members of snapshot.members) graph.members.push(members ?? undefined);
    for (const links of snapshot.links) graph.links.push(links ?? undefined);
    for (const [from, into] of snapshot.absorbedInto) graph.absorbedInto.set(from, into);
    for (const profile of snapshot.sharedProfiles) graph.sharedProfiles.add(profile);
    graph.consent.length = graph.members.length;
    for (const [profile, states] of snapshot.consent)
      graph.consent[profile] = new Map(
        states.map(([purpose, granted, at, source]) => [purpose, { granted, at, source }]),
      );
    graph.traits.length = graph.members.length;
    for (const [profile, traits] of snapshot.traits) graph.traits[profile] = traits;
    append(graph.seen, snapshot.seen);
    graph.storeVisits.length = graph.members.length;
    for (const [profile, visits] of snapshot.storeVisits) graph.storeVisits[profile] = visits;
    for (const refusal of snapshot.refusals) graph.refusals.add(refusal);
    return graph;
  }

  // -------------------------------------------------------------------------
  // Helpers

  private node(identifier: Identifier): number {
    const known = this.nodeByHash.get(identifier.hash);
    if (known !== undefined) return known;
    const node = this.nodeHash.length;
    this.nodeByHash.set(identifier.hash, node);
    this.nodeHash.push(identifier.hash);
    this.nodeType.push(this.internType(identifier.type));
    this.nodeProfile.push(-1);
    this.nodeFlags.push(0);
    return node;
  }

  private identifier(node: number): Identifier {
    return {
      type: this.typeNames[this.nodeType[node] as number] as string,
      hash: this.nodeHash[node] as string,
    };
  }

  private identifierKey(node: number): string {
    return `${this.typeNames[this.nodeType[node] as number]}:${this.nodeHash[node]}`;
  }

  private profileIndex(node: number): number {
    return node < 0 ? -1 : (this.nodeProfile[node] as number);
  }

  private ensureProfile(index: number): number {
    while (this.members.length <= index) {
      this.members.push([]);
      this.links.push([]);
      this.seen.push(Number.NaN, Number.NaN, Number.NaN, Number.NaN);
    }
    return index;
  }

  private place(profile: number, nodes: readonly number[]): void {
    const members = this.members[profile] as number[];
    for (const node of nodes) {
      if (!members.includes(node)) members.push(node);
      this.nodeProfile[node] = profile;
    }
  }

  private removeNode(profile: number, node: number): void {
    if (profile < 0) return;
    this.members[profile] = (this.members[profile] as number[]).filter((other) => other !== node);
    const links = this.links[profile] as number[];
    const kept: number[] = [];
    for (let i = 0; i < links.length; i += 2)
      if (links[i] !== node && links[i + 1] !== node)
        kept.push(links[i] as number, links[i + 1] as number);
    this.links[profile] = kept;
    this.nodeProfile[node] = -1;
  }

  private keepApart(node: number, other: number): void {
    const partners = this.apart.get(node);
    if (!partners) this.apart.set(node, [other]);
    else if (!partners.includes(other)) partners.push(other);
  }

  private mergeSightings(survivor: number, absorbed: number): void {
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
      const into = this.storeVisits[survivor] ?? [];
      for (let i = 0; i < visits.length; i += 2)
        countVisits(into, visits[i] as string, visits[i + 1] as number);
      this.storeVisits[survivor] = into;
      this.storeVisits[absorbed] = undefined;
    }
  }

  /** The node of highest priority (ties: the first seen), or -1. */
  private best(nodes: readonly number[]): number {
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

  private sameProfile(nodes: readonly number[]): boolean {
    const profile = this.nodeProfile[nodes[0] as number];
    for (const node of nodes) if (this.nodeProfile[node] !== profile) return false;
    return true;
  }

  private typeCounts(members: readonly number[]): Map<number, number> {
    const counts = new Map<number, number>();
    for (const node of members) {
      const type = this.nodeType[node] as number;
      counts.set(type, (counts.get(type) ?? 0) + 1);
    }
    return counts;
  }

  private isIdentified(members: readonly number[]): boolean {
    return members.some((node) => this.isStrong(node));
  }

  private isStrong(node: number): boolean {
    return this.typeIsStrong(this.nodeType[node] as number);
  }

  private isShared(node: number): boolean {
    return ((this.nodeFlags[node] as number) & SHARED) !== 0;
  }

  // Per-type rules, by interned type.
  private readonly strong: boolean[] = [];
  private readonly priority: number[] = [];
  private readonly max: number[] = [];

  private internType(name: string): number {
    const known = this.typeIndex.get(name);
    if (known !== undefined) return known;
    const index = this.typeNames.push(name) - 1;
    this.typeIndex.set(name, index);
    const rank = this.rules.priority.indexOf(name);
    this.priority[index] = rank < 0 ? this.rules.priority.length : rank;
    this.strong[index] = this.rules.strength[name] === 'strong';
    this.max[index] = this.rules.maxPerProfile[name] ?? Number.POSITIVE_INFINITY;
    return index;
  }

  private typeIsStrong(type: number): boolean {
    return this.strong[type] === true;
  }

  private priorityOf(type: number): number {
    return this.priority[type] as number;
  }

  private priorityOfName(name: string): number {
    return this.priorityOf(this.internType(name));
  }

  private maxOf(type: number): number {
    return this.max[type] as number;
  }

  private limitDetail(type: number, max: number): string {
    return `a profile holds at most ${max} ${this.typeNames[type]}`;
  }
}

export interface GraphSnapshot {
  readonly v: 1;
  readonly seq: number;
  readonly typeNames: string[];
  readonly nodeHash: string[];
  readonly nodeType: number[];
  readonly nodeProfile: number[];
  readonly nodeFlags: number[];
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

function describeConsent(state: ConsentState) {
  return {
    granted: state.granted,
    at: iso(state.at),
    source: state.source as 'web' | 'app' | 'pos' | 'import' | 'system',
  };
}

type StoreVisits = (string | number)[];

function countVisits(visits: StoreVisits, storeId: string, count: number): void {
  const at = visits.indexOf(storeId);
  if (at >= 0) visits[at + 1] = (visits[at + 1] as number) + count;
  else visits.push(storeId, count);
}

/** The most visited store; ties go to the smaller id, so the choice is deterministic. */
function preferredStore(visits: StoreVisits): string {
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

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function sortedEntries(value: Record<string, unknown> | undefined): [string, unknown][] {
  return Object.entries(value ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

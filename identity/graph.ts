/**
 * The identity graph: which identifiers belong to which profile, and why.
 *
 * `resolve(input)` decides what a fact or command means for the graph and
 * returns the decisions as identity events, each applied as it is made
 * (`apply`, in `graph.state.ts`, is the only mutator), so folding the events
 * a resolver appended rebuilds the same profiles (invariant 3).
 */
import type { Identifier } from '../schemas/identifier.js';
import {
  IdentityEventTypes as E,
  type Evidence,
  type IdentityEvent,
  type IdentityEventOf,
  type IdentityRules,
  type RuleName,
} from '../schemas/identity.js';
import type {
  EraseCommand,
  ForgetCommand,
  IdentityFact,
  IdentityInput,
  UnlinkCommand,
} from './fact.js';
import { type GraphSnapshot, loadSnapshot } from './graph.snapshot.js';
import {
  type ConsentState,
  countVisits,
  describeConsent,
  FIRST_OFFLINE,
  FIRST_ONLINE,
  GraphState,
  NEVER_LINK,
  preferredStore,
  profileIdOf,
  SHARED,
  sameJson,
} from './graph.state.js';

interface Refusal {
  readonly rule: RuleName;
  readonly detail: string;
}

export class IdentityGraph extends GraphState {
  /** Decisions of the input being resolved. */
  private out: IdentityEvent[] = [];

  /** The decisions a fact or command leads to; they are already applied when this returns. */
  resolve(input: IdentityInput): IdentityEvent[] {
    this.out = [];
    if (input.kind === 'fact') this.fact(input);
    else if (input.kind === 'unlink') this.unlink(input);
    else if (input.kind === 'forget') this.forget(input);
    else this.erase(input);
    return this.out;
  }

  private fact(fact: IdentityFact): void {
    const evidence: Evidence = { eventId: fact.eventId, position: fact.position };
    const active: number[] = [];
    const fresh: Identifier[] = [];
    let sharedNode = -1;
    for (const identifier of fact.identifiers) {
      const node = this.index.get(identifier.hash);
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
    for (const identifier of fresh) active.push(this.index.get(identifier.hash) as number);
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
    const nodeA = this.index.get(a.hash);
    const nodeB = this.index.get(b.hash);
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

  /**
   * The person holding `hash`: its profile (the survivor first, then every
   * profile merged into it) and all their identifiers. Undefined when no
   * profile holds it.
   */
  personOf(hash: string): { profileIds: string[]; identifiers: Identifier[] } | undefined {
    const node = this.index.get(hash);
    const survivor = node === undefined ? -1 : this.profileIndex(node);
    if (survivor < 0) return undefined;
    const profiles = [survivor];
    for (const absorbed of this.absorbedInto.keys())
      if (this.survivorOf(absorbed) === survivor) profiles.push(absorbed);
    return {
      profileIds: profiles.map(profileIdOf),
      identifiers: profiles.flatMap((profile) =>
        (this.members[profile] ?? []).map((member) => this.identifier(member)),
      ),
    };
  }

  /** Forgets every identifier of the profile holding the command's identifier. */
  private erase(command: EraseCommand): void {
    const node = this.index.get(command.identifier.hash);
    const profile = node === undefined ? -1 : this.profileIndex(node);
    if (profile < 0) return;
    const evidence = { eventId: command.eventId, position: command.position };
    for (const member of [...(this.members[profile] ?? [])])
      this.emit({
        type: E.forgotten,
        profileId: profileIdOf(profile),
        seq: this.seq,
        evidence,
        identifier: this.identifier(member),
      });
  }

  private forget(command: ForgetCommand): void {
    const node = this.index.get(command.identifier.hash);
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
    const visits = countVisits(this.storeVisits[profile], this.storeName(storeId), 1);
    this.storeVisits[profile] = visits;
    const preferred = preferredStore(visits);
    if (this.traits[profile]?.preferred_store !== preferred)
      this.emitTraits(profile, { preferred_store: preferred }, evidence);
  }

  private see(profile: number, fact: IdentityFact): void {
    // A consent platform's statement says what the person wants, not that they were here.
    if (fact.channel === undefined) return;
    const base = profile * 4 + (fact.channel === 'online' ? FIRST_ONLINE : FIRST_OFFLINE);
    const first = this.seen[base] as number;
    const last = this.seen[base + 1] as number;
    if (Number.isNaN(first) || fact.at < first) this.seen[base] = fact.at;
    if (Number.isNaN(last) || fact.at > last) this.seen[base + 1] = fact.at;
  }

  private emit(event: IdentityEvent): void {
    this.out.push(event);
    this.apply(event);
  }

  /** A graph from a snapshot (`toSnapshot()`), deciding by `rules`. */
  static restore(snapshot: GraphSnapshot, rules: IdentityRules): IdentityGraph {
    const graph = new IdentityGraph(rules);
    loadSnapshot(graph, snapshot);
    return graph;
  }
}

/**
 * Applying a decision to the graph: the only place profile membership,
 * consent and traits change. The resolver applies each decision as it makes
 * it; folding the events read back from the log gives the same graph.
 */
import { IdentityEventTypes as E, type IdentityEvent } from '../schemas/identity.js';
import {
  exactly,
  FORGOTTEN,
  type GraphState,
  linksWithout,
  NEVER_LINK,
  profileIndexOf,
  SHARED,
} from './graph.state.js';

/** Applies one decision to the graph's state. */
export function evolve(state: GraphState, event: IdentityEvent): void {
  state.seq = Math.max(state.seq, event.seq + 1);
  switch (event.type) {
    case E.created: {
      const profile = state.ensureProfile(profileIndexOf(event.profileId));
      if ((state.members[profile] as number[]).length > 0) return; // a split already placed them
      const nodes = event.identifiers.map((identifier) => state.node(identifier));
      const pairs: number[] = [];
      for (let i = 1; i < nodes.length; i++) pairs.push(nodes[0] as number, nodes[i] as number);
      state.addLinks(profile, pairs);
      state.place(profile, nodes);
      return;
    }
    case E.linked: {
      const profile = state.ensureProfile(profileIndexOf(event.profileId));
      // The new identifiers were seen together: chained to the first, which hangs on `via`,
      // so they stay together if `via` (a device) later turns out to be shared.
      const via = state.node(event.via);
      const nodes = event.identifiers.map((identifier) => state.node(identifier));
      const pairs: number[] = [];
      for (const [i, node] of nodes.entries())
        pairs.push(i === 0 ? via : (nodes[0] as number), node);
      state.addLinks(profile, pairs);
      state.place(profile, nodes);
      return;
    }
    case E.merged: {
      const survivor = profileIndexOf(event.profileId);
      const absorbed = profileIndexOf(event.absorbed);
      const moving = state.members[absorbed] ?? [];
      state.addLinks(survivor, [
        state.node(event.bridge[0]),
        state.node(event.bridge[1]),
        ...(state.links[absorbed] ?? []),
      ]);
      state.members[absorbed] = undefined;
      state.links[absorbed] = undefined;
      state.consent[absorbed] = undefined;
      state.traits[absorbed] = undefined;
      state.place(survivor, moving);
      state.absorbedInto.set(absorbed, survivor);
      state.mergeSightings(survivor, absorbed);
      return;
    }
    case E.absorbed:
      return; // the merge in the survivor's stream moved everything
    case E.ignored: {
      const node = state.node(event.identifier);
      state.nodeFlags[node] = (state.nodeFlags[node] as number) | NEVER_LINK;
      return;
    }
    case E.refused:
      if (event.otherProfileId)
        state.refusals.add(
          `${profileIndexOf(event.profileId)}|${profileIndexOf(event.otherProfileId)}|${event.rule}`,
        );
      return;
    case E.shared: {
      const node = state.node(event.identifier);
      state.nodeFlags[node] = (state.nodeFlags[node] as number) | SHARED;
      state.foreignStrong.delete(node);
      state.conflicts.delete(node);
      const own = state.ensureProfile(profileIndexOf(event.sharedProfileId));
      const from = state.nodeProfile[node] as number;
      if (own !== from) {
        state.removeNode(from, node);
        state.place(own, [node]);
      }
      state.sharedProfiles.add(own);
      return;
    }
    case E.split: {
      const profile = profileIndexOf(event.profileId);
      for (const part of event.parts) {
        const target = state.ensureProfile(profileIndexOf(part.profileId));
        const nodes = part.identifiers.map((identifier) => state.node(identifier));
        const inPart = new Set(nodes);
        const links = state.links[profile] as number[];
        state.addLinks(
          target,
          linksWithout(links, (node) => !inPart.has(node)),
        );
        state.links[profile] = linksWithout(links, (node) => inPart.has(node));
        state.members[profile] = exactly(
          (state.members[profile] as number[]).filter((node) => !inPart.has(node)),
        );
        state.place(target, nodes);
      }
      if (event.apart) {
        const a = state.node(event.apart[0]);
        const b = state.node(event.apart[1]);
        state.keepApart(a, b);
        state.keepApart(b, a);
      }
      return;
    }
    case E.forgotten: {
      const node = state.index.get(event.identifier.hash);
      if (node === undefined) return;
      state.removeNode(state.nodeProfile[node] as number, node);
      state.index.remove(node);
      state.nodeFlags[node] = FORGOTTEN;
      state.foreignStrong.delete(node);
      state.conflicts.delete(node);
      for (const partner of state.apart.get(node) ?? [])
        state.apart.set(
          partner,
          (state.apart.get(partner) ?? []).filter((other) => other !== node),
        );
      state.apart.delete(node);
      return;
    }
    case E.consent: {
      const profile = state.ensureProfile(profileIndexOf(event.profileId));
      let states = state.consent[profile];
      if (!states) {
        states = new Map();
        state.consent[profile] = states;
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
      const profile = state.ensureProfile(profileIndexOf(event.profileId));
      state.traits[profile] = { ...state.traits[profile], ...event.traits };
      return;
    }
  }
}

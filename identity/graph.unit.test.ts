import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_IDENTITY_RULES,
  type IdentityEvent,
  IdentityEvent as IdentityEventSchema,
  IdentityRules,
} from '../schemas/identity.js';
import type { IdentityInput } from './fact.js';
import { IdentityGraph } from './graph.js';
import type { GraphSnapshot } from './graph.snapshot.js';
import { erase, fact, id, unlink } from './testing/facts.js';

/** Runs inputs through a fresh graph; returns it and every decision. */
function resolveAll(inputs: readonly IdentityInput[], rules = DEFAULT_IDENTITY_RULES) {
  const graph = new IdentityGraph(rules);
  const events: IdentityEvent[] = [];
  for (const input of inputs) events.push(...graph.resolve(input));
  return { graph, events };
}

/** The identifiers of the profile holding `spec`, as specs' hashes. */
function profileWith(graph: IdentityGraph, spec: string) {
  const profileId = graph.profileOf(id(spec).hash);
  return profileId ? graph.profile(profileId) : undefined;
}

function together(graph: IdentityGraph, a: string, b: string): boolean {
  const profile = graph.profileOf(id(a).hash);
  return profile !== undefined && profile === graph.profileOf(id(b).hash);
}

describe('IdentityGraph: linking', () => {
  it('a login links the device to the account, explained by the login event', () => {
    const browse = fact('anonymous_id:phone-1');
    const login = fact('anonymous_id:phone-1', 'user_id:ana', 'email:ana');
    const { graph, events } = resolveAll([browse, login]);
    expect(together(graph, 'anonymous_id:phone-1', 'user_id:ana')).toBe(true);
    expect(together(graph, 'user_id:ana', 'email:ana')).toBe(true);
    expect(events.map((event) => event.type)).toEqual([
      'identity.profile_created',
      'identity.identifiers_linked',
    ]);
    const linked = events[1] as Extract<IdentityEvent, { type: 'identity.identifiers_linked' }>;
    expect(linked.evidence.eventId).toBe(login.eventId);
    expect(linked.via).toEqual(id('anonymous_id:phone-1'));
    expect(linked.identifiers).toEqual([id('user_id:ana'), id('email:ana')]);
    for (const event of events) expect(IdentityEventSchema.parse(event)).toEqual(event);
  });

  it('guest checkout, then account creation on the same device: one profile', () => {
    const { graph } = resolveAll([
      fact('anonymous_id:laptop', 'email:bo'), // guest checkout
      fact('anonymous_id:laptop', 'user_id:bo', 'email:bo'), // signs up later
    ]);
    expect(profileWith(graph, 'user_id:bo')?.identifiers).toHaveLength(3);
  });

  it('alias calls link the anonymous id to the user id', () => {
    const { graph } = resolveAll([
      fact('anonymous_id:app-1'),
      fact('anonymous_id:app-1', 'user_id:cy'), // alias previousId → userId
    ]);
    expect(together(graph, 'anonymous_id:app-1', 'user_id:cy')).toBe(true);
  });

  it('online and offline profiles merge when a receipt shows the phone of the online account; the older profile survives', () => {
    const online = fact('anonymous_id:d1', 'user_id:dee', 'email:dee', 'phone:dee');
    const store = fact('member_id:dee', 'payment_token:card-dee', { storeId: 'store-1' });
    const bridge = fact('phone:dee', 'payment_token:card-dee', { storeId: 'store-2' });
    const { graph, events } = resolveAll([online, store, bridge]);
    const profile = profileWith(graph, 'member_id:dee');
    expect(profile?.identifiers).toHaveLength(6);
    expect(profile?.id).toBe(graph.profileOf(id('user_id:dee').hash));
    const merged = events.find((event) => event.type === 'identity.profiles_merged');
    expect(merged).toMatchObject({
      profileId: profile?.id,
      evidence: { eventId: bridge.eventId },
      bridge: [id('phone:dee'), id('payment_token:card-dee')],
    });
    expect(profile?.seen.online && profile.seen.offline).toBeTruthy();
  });

  it('a member who linked the card in the app: the store profile of the card joins the account at the next login', () => {
    const store = fact('member_id:ivy', 'payment_token:card-ivy', { storeId: 'store-1' });
    const online = fact('anonymous_id:ivy-app', 'user_id:ivy', 'email:ivy');
    const login = fact('anonymous_id:ivy-app', 'user_id:ivy', 'email:ivy', 'member_id:ivy');
    const { graph, events } = resolveAll([store, online, login]);
    expect(together(graph, 'payment_token:card-ivy', 'anonymous_id:ivy-app')).toBe(true);
    expect(profileWith(graph, 'user_id:ivy')?.id).toBe(graph.profileOf(id('member_id:ivy').hash));
    expect(events.find((event) => event.type === 'identity.profiles_merged')).toMatchObject({
      evidence: { eventId: login.eventId },
      bridge: [id('member_id:ivy'), id('user_id:ivy')],
    });
  });

  it("a cashier's typo in the phone joins the profile of the member card on the same receipt", () => {
    const { graph } = resolveAll([
      fact('member_id:eve', 'phone:eve', { storeId: 'store-1' }),
      fact('member_id:eve', 'phone:eve-typo', { storeId: 'store-1' }),
    ]);
    expect(together(graph, 'phone:eve-typo', 'member_id:eve')).toBe(true);
  });
});

describe('IdentityGraph: refusing wrong merges', () => {
  it('two logged-in users on one device stay two profiles; the device becomes shared', () => {
    const { graph, events } = resolveAll([
      fact('anonymous_id:tablet', 'user_id:mum', 'email:mum'),
      fact('anonymous_id:tablet'),
      fact('anonymous_id:tablet', 'user_id:kid', 'email:kid'),
    ]);
    expect(together(graph, 'user_id:mum', 'user_id:kid')).toBe(false);
    expect(together(graph, 'anonymous_id:tablet', 'user_id:mum')).toBe(false);
    expect(profileWith(graph, 'anonymous_id:tablet')?.shared).toBe(true);
    const refused = events.find((event) => event.type === 'identity.link_refused');
    expect(refused).toMatchObject({ rule: 'limit', detail: 'a profile holds at most 1 user_id' });
    expect(events.find((event) => event.type === 'identity.identifier_shared')).toMatchObject({
      identifier: id('anonymous_id:tablet'),
    });
  });

  it('a guest checkout on the family tablet does not give the owner a second email; a second login makes the tablet shared', () => {
    const { graph, events } = resolveAll([
      fact('anonymous_id:tablet', 'user_id:dad', 'email:dad'),
      fact('anonymous_id:tablet', 'email:teen'), // another household member checks out as a guest
    ]);
    expect(together(graph, 'email:teen', 'user_id:dad')).toBe(false);
    expect(events.find((event) => event.type === 'identity.link_refused')).toMatchObject({
      rule: 'weak_bridge',
      identifiers: [id('email:teen')],
    });
    // It could have been dad's second address: the tablet is not blamed yet.
    expect(profileWith(graph, 'anonymous_id:tablet')?.shared).toBe(false);

    graph.resolve(fact('anonymous_id:tablet', 'user_id:teen', 'email:teen'));
    expect(profileWith(graph, 'anonymous_id:tablet')?.shared).toBe(true);
    expect(together(graph, 'user_id:teen', 'email:teen')).toBe(true);
    expect(together(graph, 'user_id:teen', 'user_id:dad')).toBe(false);
  });

  it('a member card lent to a friend with an account of their own does not merge the two', () => {
    const { graph, events } = resolveAll([
      fact('member_id:gus', 'user_id:gus', 'payment_token:gus-card'),
      fact('user_id:hal', 'email:hal', 'payment_token:hal-card'),
      fact('member_id:gus', 'payment_token:hal-card', { storeId: 'store-1' }), // Hal pays, showing Gus's card
    ]);
    expect(together(graph, 'user_id:gus', 'user_id:hal')).toBe(false);
    expect(events.find((event) => event.type === 'identity.link_refused')).toMatchObject({
      rule: 'limit',
      detail: 'a profile holds at most 1 user_id',
    });
  });

  it('a store demo device seen with many shoppers stops linking once it is shared', () => {
    const inputs = [fact('anonymous_id:demo', 'user_id:s0')];
    for (let i = 1; i <= 8; i++) inputs.push(fact('anonymous_id:demo', `email:shopper-${i}`));
    const { graph } = resolveAll(inputs);
    expect(profileWith(graph, 'anonymous_id:demo')?.shared).toBe(true);
    const profiles = new Set(
      Array.from({ length: 8 }, (_, i) => graph.profileOf(id(`email:shopper-${i + 1}`).hash)),
    );
    expect(profiles.size).toBe(8);
  });

  it('placeholder values never link, and the first sight of one is recorded', () => {
    const { graph, events } = resolveAll([
      fact('email:guest!', 'user_id:ivy'),
      fact('email:guest!', 'user_id:jon'),
    ]);
    expect(together(graph, 'user_id:ivy', 'user_id:jon')).toBe(false);
    expect(graph.profileOf(id('email:guest').hash)).toBeUndefined();
    expect(events.filter((event) => event.type === 'identity.identifier_ignored')).toHaveLength(1);
  });

  it('an identifier type over its limit in one fact goes to a profile of its own, recorded', () => {
    const { graph, events } = resolveAll([fact('user_id:old-login', 'user_id:new-login')]);
    expect(together(graph, 'user_id:old-login', 'user_id:new-login')).toBe(false);
    expect(events.map((event) => event.type)).toEqual([
      'identity.profile_created',
      'identity.profile_created',
      'identity.link_refused',
    ]);
  });

  it('a repeated conflict is explained once', () => {
    const { events } = resolveAll([
      fact('user_id:kim', 'member_id:kim'),
      fact('user_id:lee', 'member_id:lee'),
      fact('user_id:kim', 'member_id:lee'),
      fact('user_id:kim', 'member_id:lee'),
    ]);
    expect(events.filter((event) => event.type === 'identity.link_refused')).toHaveLength(1);
  });
});

describe('IdentityGraph: unmerge', () => {
  it('an operator unlink splits the profile along its own links and keeps the two apart', () => {
    const { graph, events } = resolveAll([
      fact('anonymous_id:d1', 'user_id:max', 'email:max'),
      fact('user_id:max', 'phone:shared-line'),
      fact('phone:shared-line', 'member_id:nia', { storeId: 'store-1' }),
      unlink('user_id:max', 'member_id:nia'),
      fact('user_id:max', 'member_id:nia'), // the same evidence again: refused now
    ]);
    expect(together(graph, 'user_id:max', 'member_id:nia')).toBe(false);
    expect(together(graph, 'user_id:max', 'email:max')).toBe(true);
    const split = events.find((event) => event.type === 'identity.profile_split');
    expect(split).toMatchObject({
      rule: 'operator',
      apart: [id('user_id:max'), id('member_id:nia')],
    });
    expect(events.at(-1)).toMatchObject({ type: 'identity.link_refused', rule: 'kept_apart' });
  });

  it('withdrawals carry over to the parts of a split; grants do not', () => {
    const { graph } = resolveAll([
      fact('user_id:ora', 'email:ora', {
        consent: { personalization: true, marketing_email: false },
      }),
      fact('user_id:ora', 'member_id:pat'),
      unlink('user_id:ora', 'member_id:pat'),
    ]);
    expect(profileWith(graph, 'member_id:pat')?.consent).toMatchObject({
      marketing_email: { granted: false },
    });
    expect(profileWith(graph, 'member_id:pat')?.consent.personalization).toBeUndefined();
  });
});

describe('IdentityGraph: consent and traits', () => {
  it('the latest statement per purpose wins, whichever linked identifier made it', () => {
    const day = 86_400_000;
    const t0 = Date.UTC(2026, 2, 1);
    const { graph, events } = resolveAll([
      fact('anonymous_id:w1', { at: t0, consent: { personalization: true, analytics: true } }),
      fact('anonymous_id:w1', 'user_id:quinn', { at: t0 + day }),
      fact('member_id:quinn', 'user_id:quinn', {
        at: t0 + 3 * day,
        storeId: 'store-9',
        consent: { personalization: false },
      }),
      // An older statement arriving late changes nothing.
      fact('anonymous_id:w1', { at: t0 + 2 * day, consent: { personalization: true } }),
    ]);
    const profile = profileWith(graph, 'user_id:quinn');
    expect(profile?.consent.personalization).toMatchObject({ granted: false, source: 'pos' });
    expect(profile?.consent.analytics).toMatchObject({ granted: true, source: 'web' });
    expect(profile?.traits).toEqual({ preferred_store: 'store-9' });
    expect(events.filter((event) => event.type === 'identity.consent_changed')).toHaveLength(2);
  });

  it('takes a consent platform’s statement without counting it as a visit', () => {
    const t0 = Date.UTC(2026, 2, 1);
    const { graph } = resolveAll([
      fact('email:rey', 'user_id:rey', { at: t0 }),
      {
        ...fact('email:rey', { at: t0 + 1000, consent: { marketing_email: false } }),
        channel: undefined,
        sourceKind: 'cmp',
      },
    ]);
    const profile = profileWith(graph, 'user_id:rey');
    expect(profile?.consent.marketing_email).toMatchObject({ granted: false, source: 'cmp' });
    expect(profile?.seen).toEqual({
      online: { first: new Date(t0).toISOString(), last: new Date(t0).toISOString() },
    });
  });
});

describe('IdentityGraph: erasure', () => {
  it('forgets every identifier of the person, across the profiles merged into theirs, and no one else', () => {
    const online = fact('anonymous_id:d1', 'user_id:dee', 'email:dee', 'phone:dee');
    const store = fact('member_id:dee', 'payment_token:card-dee', { storeId: 'store-1' });
    const bridge = fact('phone:dee', 'payment_token:card-dee', { storeId: 'store-2' });
    const other = fact('anonymous_id:d2', 'user_id:fay');
    const { graph } = resolveAll([online, store, bridge, other]);
    const survivor = graph.profileOf(id('user_id:dee').hash) as string;
    const absorbed = graph.profileOf(id('member_id:dee').hash);
    const person = graph.personOf(id('email:dee').hash);
    expect(person?.profileIds[0]).toBe(survivor);
    expect(person?.profileIds).toHaveLength(2);
    expect(absorbed).toBe(survivor);
    expect(person?.identifiers).toHaveLength(6);

    const decisions = graph.resolve(erase('phone:dee'));
    expect(decisions.map((decision) => decision.type)).toEqual(
      Array(6).fill('identity.identifier_forgotten'),
    );
    for (const spec of [
      'anonymous_id:d1',
      'user_id:dee',
      'member_id:dee',
      'payment_token:card-dee',
    ])
      expect(graph.profileOf(id(spec).hash), spec).toBeUndefined();
    expect(graph.personOf(id('email:dee').hash)).toBeUndefined();
    expect(together(graph, 'anonymous_id:d2', 'user_id:fay')).toBe(true);
    expect(graph.resolve(erase('phone:dee'))).toEqual([]);
  });

  it('a new fact with an erased identifier starts a new profile (ingest suppresses them; the graph keeps nothing)', () => {
    const { graph } = resolveAll([fact('anonymous_id:d1', 'user_id:dee'), erase('user_id:dee')]);
    graph.resolve(fact('user_id:dee'));
    expect(graph.profile(graph.profileOf(id('user_id:dee').hash) as string)?.identifiers).toEqual([
      id('user_id:dee'),
    ]);
  });
});

describe('IdentityGraph: rebuilds', () => {
  const universe = [
    'anonymous_id:a',
    'anonymous_id:b',
    'anonymous_id:c',
    'user_id:u1',
    'user_id:u2',
    'email:e1',
    'email:e2',
    'email:e3',
    'phone:p1',
    'phone:p2',
    'member_id:m1',
    'member_id:m2',
    'payment_token:t1',
    'email:guest!',
  ];
  const inputArbitrary = fc.oneof(
    {
      weight: 9,
      arbitrary: fc.record({
        ids: fc.uniqueArray(fc.constantFrom(...universe), { minLength: 1, maxLength: 4 }),
        consent: fc.option(
          fc.dictionary(fc.constantFrom('personalization', 'analytics'), fc.boolean()),
          { nil: undefined },
        ),
        store: fc.option(fc.constantFrom('s1', 's2'), { nil: undefined }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        apart: fc.uniqueArray(fc.constantFrom(...universe.slice(0, -1)), {
          minLength: 2,
          maxLength: 2,
        }),
      }),
    },
  );
  type Item =
    | { ids: string[]; consent?: Record<string, boolean> | undefined; store?: string | undefined }
    | { apart: string[] };
  const toInputs = (items: readonly Item[]): IdentityInput[] =>
    items.map((item) =>
      'apart' in item
        ? unlink(item.apart[0] as string, item.apart[1] as string)
        : fact(...item.ids, {
            ...(item.consent ? { consent: item.consent } : {}),
            ...(item.store ? { storeId: item.store } : {}),
          }),
    );

  it('deciding in chunks with snapshots in between equals deciding in one pass', () => {
    fc.assert(
      fc.property(
        fc.array(inputArbitrary, { maxLength: 60 }),
        fc.array(fc.nat(60), { maxLength: 5 }),
        (items, cuts) => {
          const inputs = toInputs(items);
          const once = resolveAll(inputs);
          let graph = new IdentityGraph(DEFAULT_IDENTITY_RULES);
          const events: IdentityEvent[] = [];
          for (const [i, input] of inputs.entries()) {
            if (cuts.includes(i))
              graph = IdentityGraph.restore(
                unpack(pack(graph.toSnapshot())) as GraphSnapshot,
                DEFAULT_IDENTITY_RULES,
              );
            events.push(...graph.resolve(input));
          }
          expect(graph.digest()).toBe(once.graph.digest());
          expect(events).toEqual(once.events);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('folding the decisions alone rebuilds every profile, its consent and its traits', () => {
    fc.assert(
      fc.property(fc.array(inputArbitrary, { maxLength: 60 }), (items) => {
        const { graph, events } = resolveAll(toInputs(items));
        const folded = new IdentityGraph(DEFAULT_IDENTITY_RULES);
        for (const event of events) folded.apply(IdentityEventSchema.parse(event));
        expect([...folded.memberships()]).toEqual([...graph.memberships()]);
        expect(folded.digest()).toBe(graph.digest());
      }),
      { numRuns: 300 },
    );
  });

  it('never puts more values of a type in a profile than the rules allow', () => {
    const strict = IdentityRules.parse({ maxPerProfile: { email: 1, user_id: 1, phone: 1 } });
    fc.assert(
      fc.property(fc.array(inputArbitrary, { maxLength: 60 }), (items) => {
        const { graph } = resolveAll(toInputs(items), strict);
        for (const { identifiers } of graph.memberships()) {
          for (const type of ['email', 'user_id', 'phone'])
            expect(
              identifiers.filter((key) => key.startsWith(`${type}:`)).length,
            ).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 200 },
    );
  });
});

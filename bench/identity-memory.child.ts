/**
 * The memory part of the identity benchmark, alone in a process so the heap
 * holds nothing else; run with `--expose-gc`. `graph N` builds N synthetic
 * profiles of six identifiers with `IdentityGraph.resolve`; `raw N` holds the
 * same 6N hashes in a bare Map to a profile number, the least any index of
 * them takes. Prints `{ heapMB, profiles, identifiers, seconds }` as JSON on
 * stdout: heapMB is the V8 heap used after a full GC plus the memory outside
 * it (buffers, typed arrays), less what the process used before building.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IdentityFact } from '../identity/fact.js';
import { IdentityGraph } from '../identity/graph.js';
import type { Identifier } from '../schemas/identifier.js';
import { DEFAULT_IDENTITY_RULES } from '../schemas/identity.js';

const START = Date.UTC(2026, 0, 1);
const STORES = 10;
/** The log position the next synthetic fact pretends to have. */
let position = 0;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('identity-memory.child needs node --expose-gc');
const mode = process.argv[2];
const count = Number(process.argv[3]);
if ((mode !== 'graph' && mode !== 'raw') || !(count > 0))
  throw new Error('usage: identity-memory.child.js graph|raw COUNT');

const before = heapUsed();
const started = performance.now();
const held = mode === 'graph' ? buildGraph(count) : buildRawIndex(count);
const seconds = (performance.now() - started) / 1000;
const heap = heapUsed() - before;
// Read `held` after the measurement, so it cannot be collected before it.
const figures =
  held instanceof IdentityGraph
    ? { profiles: held.profileCount, identifiers: held.identifierCount }
    : { profiles: count, identifiers: held.size };
process.stdout.write(`${JSON.stringify({ heapMB: heap / 2 ** 20, ...figures, seconds })}\n`);

/**
 * Each person as the resolver meets them: a web session with a login
 * (device, account, email), a till receipt (member card, phone, card token)
 * that starts a second profile, then an identify with the phone that merges
 * the two. The oldest profile survives, so N people leave N profiles.
 */
function buildGraph(people: number): IdentityGraph {
  const graph = new IdentityGraph(DEFAULT_IDENTITY_RULES);
  for (let i = 0; i < people; i++) {
    const { device, account, email, member, phone, token } = identifiersOf(i);
    graph.resolve(fact([device, account, email]));
    graph.resolve(fact([member, phone, token], `store-${i % STORES}`));
    graph.resolve(fact([phone, account]));
  }
  return graph;
}

function buildRawIndex(people: number): Map<string, number> {
  const index = new Map<string, number>();
  for (let i = 0; i < people; i++)
    for (const { hash } of Object.values(identifiersOf(i))) index.set(hash, i);
  return index;
}

/** Person i's six identifiers; hashes look like ingest's (43 base64url characters). */
function identifiersOf(i: number) {
  const id = (type: string, name: string): Identifier => ({
    type,
    hash: createHash('sha256').update(`${type}:${name}_${i}`).digest('base64url'),
  });
  return {
    device: id('anonymous_id', 'dev'),
    account: id('user_id', 'u'),
    email: id('email', 'e'),
    member: id('member_id', 'm'),
    phone: id('phone', 'p'),
    token: id('payment_token', 't'),
  };
}

function fact(identifiers: Identifier[], storeId?: string): IdentityFact {
  position++;
  return {
    kind: 'fact',
    eventId: randomUUID(),
    position: `${position}/${position}`,
    at: START + position * 1000,
    channel: storeId ? 'offline' : 'online',
    sourceKind: storeId ? 'pos' : 'web',
    identifiers,
    consent: undefined,
    traits: undefined,
    storeId,
  };
}

function heapUsed(): number {
  // Twice: the first pass can leave objects that only a second one frees (weak refs, finalisers).
  gc?.();
  gc?.();
  // Buffers and typed arrays live outside the V8 heap: count them too.
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

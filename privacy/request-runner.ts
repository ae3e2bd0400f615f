/**
 * Runs privacy requests to completion: a process manager whose progress is
 * the request's own stream. Each step is recorded when done and is harmless
 * to run again, so a crash at any point, then a restart, finishes the
 * request from the step after the last one recorded.
 *
 * Erasure, in order:
 * 1. `resolve` — suppress the named identifier (nothing new about them gets
 *    in from now on), ask the identity resolver to forget the person (an
 *    erasure command in a stream of its own) and wait for its answer: the
 *    profiles and every identifier they held. The person is recorded sealed
 *    under the request's key.
 * 2. `suppress` — every identifier of the person.
 * 3. `destroy_keys` — their data keys: whatever was sealed under them, in
 *    the log or any copy of it, is unreadable from now on (crypto-shredding).
 * 4. `await_projection` — the warehouse projection has written the
 *    resolver's answer (and so the forgetting before it).
 * 5. `delete_warehouse` — their rows from every ClickHouse table.
 * 6. `delete_streams` — their streams (raw events, profile decisions) from
 *    the log, then the store overwrites the space they held.
 * 7. `verify` — no table has a row of theirs, no stream of theirs can be
 *    read; else the warehouse is cleaned once more and checked again.
 * 8. `complete` — the erasure's command stream goes, the request's key is
 *    destroyed: the request keeps types, times and counts only.
 *
 * Access, suppress-only and unsuppress resolve the person from the warehouse
 * (the graph stays as it is) and then do their one thing.
 */
import type { Logger } from 'pino';
import { appendOnce, deterministicEventId } from '../eventstore/append-once.js';
import {
  comparePositions,
  type EventStore,
  type Position,
  StreamDeletedError,
  StreamNotFoundError,
} from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import { ErrorCodes, TandemError } from '../schemas/errors.js';
import type { Identifier } from '../schemas/identifier.js';
import {
  ERASURE_RESOLVED,
  ErasureResolved,
  erasureStream,
  IdentityCommandTypes,
  profileStream,
} from '../schemas/identity.js';
import type { PrivacyRequestState } from '../schemas/privacy.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { AuditLog } from './audit.js';
import type { KeyStore } from './keystore.js';
import type { Person } from './person.js';
import { subjectStream } from './personal-data.js';
import type { LoadedRequest, PrivacyRequests, StepRecord } from './requests.js';
import type { SuppressionList } from './suppression.js';
import {
  countPersonRows,
  deletePersonRows,
  personOfProfile,
  prefixKeys,
  profileHolding,
} from './warehouse-person.js';

export interface PrivacyRunnerDeps {
  readonly eventStore: EventStore;
  readonly keyStore: KeyStore;
  readonly suppression: SuppressionList;
  readonly warehouse: Warehouse;
  readonly requests: PrivacyRequests;
  readonly audit: AuditLog;
  /** `TYPE:VALUE` → the identifier, normalised and hashed. */
  readonly parseIdentifier: (text: string) => Identifier;
  /** How far into the log the warehouse projection has written. */
  readonly projectedUpTo: () => Promise<Position | undefined>;
  readonly log?: Logger;
  /** How long to wait for the resolver's answer and the projection (ms); 60 s by default. */
  readonly waitMs?: number;
  /** Crash tests: stop right after this step, as a crash there would… */
  readonly crashAfter?: string;
  /** …by calling this (the platform kills its own process); without it, the runner throws `SimulatedCrash`. */
  readonly crash?: () => void;
}

/** A step that cannot be done yet (the resolver or projector is behind): retried later. */
export class NotYetError extends TandemError {
  constructor(message: string) {
    super(ErrorCodes.NOT_READY, message);
  }
}

/** Thrown by `crashAfter` in tests: the runner stops as a killed process would. */
export class SimulatedCrash extends Error {}

const ATTEMPTS = 5;

export interface PrivacyRunner {
  /** Runs one request as far as it goes now. */
  run(requestId: string): Promise<PrivacyRequestState>;
  /** Runs every request not yet completed or failed, oldest first. */
  runUnfinished(): Promise<void>;
  /** Runs unfinished requests now and then (and at once after `nudge`) until `signal` aborts. */
  follow(signal: AbortSignal, everyMs?: number): Promise<void>;
  /** A request was filed: run it soon. */
  nudge(): void;
}

export function createPrivacyRunner(deps: PrivacyRunnerDeps): PrivacyRunner {
  const failures = new Map<string, number>();
  /** Requests that may still have steps to run, and where the next filings start in the index. */
  const pending = new Set<string>();
  let nextFiled = 0;
  let wake: (() => void) | undefined;

  async function run(requestId: string): Promise<PrivacyRequestState> {
    const request = await deps.requests.load(requestId);
    if (request.view.state === 'completed' || request.view.state === 'failed')
      return request.view.state;
    try {
      const steps = stepsOf(deps, request);
      let person = request.person;
      for (const [name, step] of steps) {
        if (request.done.has(name)) continue;
        const outcome = await step(person);
        person = outcome.person ?? person;
        await deps.requests.record(requestId, { step: name, ...outcome });
        if (deps.crashAfter === name) {
          deps.crash?.();
          throw new SimulatedCrash(`crash after ${name}`);
        }
      }
      failures.delete(requestId);
      const { view } = await deps.requests.load(requestId);
      await deps.audit.record({
        keyId: view.requestedBy,
        action: `privacy.${view.type}`,
        outcome: 'ok',
        details: { requestId, ...(view.report ?? {}) },
      });
      return view.state;
    } catch (error) {
      if (error instanceof SimulatedCrash) throw error;
      const attempts = (failures.get(requestId) ?? 0) + 1;
      failures.set(requestId, attempts);
      const message = error instanceof Error ? error.message : String(error);
      deps.log?.warn({ requestId, attempts, err: message }, 'privacy request step failed');
      if (error instanceof NotYetError || attempts < ATTEMPTS) return request.view.state;
      await deps.requests.record(requestId, { step: 'failed', state: 'failed', error: message });
      await deps.audit.record({
        keyId: request.view.requestedBy,
        action: `privacy.${request.view.type}`,
        outcome: 'failed',
        details: { requestId },
      });
      return 'failed';
    }
  }

  // Only new filings are read from the index each round; a request leaves `pending` once it ends.
  async function runUnfinished(): Promise<void> {
    const { ids, next } = await deps.requests.filed(nextFiled);
    nextFiled = next;
    for (const requestId of ids) pending.add(requestId);
    for (const requestId of [...pending]) {
      const state = await run(requestId);
      if (state === 'completed' || state === 'failed') pending.delete(requestId);
    }
  }

  return {
    run,
    runUnfinished,
    async follow(signal, everyMs = 1000) {
      while (!signal.aborted) {
        await runUnfinished().catch((error: unknown) => {
          if (error instanceof SimulatedCrash) throw error;
          deps.log?.warn({ err: error }, 'could not run privacy requests; retrying');
        });
        // Sleeps until the next round, a nudge or the abort, whichever is first; leaves no listener behind.
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, everyMs);
          wake = done;
          signal.addEventListener('abort', done, { once: true });
        });
      }
    },
    nudge: () => wake?.(),
  };
}

type Outcome = Omit<StepRecord, 'step'>;
type Step = (person: Person | undefined) => Promise<Outcome>;

function stepsOf(deps: PrivacyRunnerDeps, request: LoadedRequest): [string, Step][] {
  const requestId = request.view.id;
  const need = (person: Person | undefined): Person => {
    if (!person)
      throw new Error('the request lost its person (its key is gone) before it finished');
    return person;
  };
  const named = (): Identifier | undefined => {
    if (!request.identifier)
      throw new Error('the request cannot be read any more (its key is gone)');
    return request.identifier.startsWith('profile:')
      ? undefined
      : deps.parseIdentifier(request.identifier);
  };
  /** The profile a `profile:prf_…` request names, as the warehouse knows it. */
  const namedProfile = async (): Promise<Person> => {
    const profileId = request.identifier?.slice('profile:'.length) ?? '';
    const person = await personOfProfile(deps.warehouse, profileId);
    if (!person) throw new TandemError(ErrorCodes.NOT_FOUND, `no profile ${profileId}`);
    return person;
  };
  const lookUp = async (): Promise<Outcome> => {
    const identifier = named();
    if (!identifier) {
      const person = await namedProfile();
      return { state: 'running', person, counts: sizeOf(person) };
    }
    const profileId = await profileHolding(deps.warehouse, identifier);
    const found = profileId ? await personOfProfile(deps.warehouse, profileId) : undefined;
    const person = withNamed(found, identifier);
    return { state: 'running', person, counts: sizeOf(person) };
  };

  switch (request.view.type) {
    case 'access':
      return [
        ['resolve', lookUp],
        [
          'count',
          async (person) => ({
            state: 'completed',
            counts: {
              ...(await countPersonRows(deps.warehouse, requestId, need(person))),
              log_events: await countEvents(deps.eventStore, streamsOf(need(person))),
            },
          }),
        ],
      ];
    case 'suppress_only':
      return [
        ['resolve', lookUp],
        [
          'suppress',
          async (person) => {
            await deps.suppression.add(need(person).identifiers);
            return { state: 'completed', counts: { suppressed: need(person).identifiers.length } };
          },
        ],
      ];
    case 'unsuppress':
      return [
        ['resolve', lookUp],
        [
          'unsuppress',
          async (person) => {
            await deps.suppression.remove(need(person).identifiers);
            return {
              state: 'completed',
              counts: { unsuppressed: need(person).identifiers.length },
            };
          },
        ],
      ];
    case 'erasure':
      return erasureSteps(deps, requestId, { named, namedProfile, need });
  }
}

function erasureSteps(
  deps: PrivacyRunnerDeps,
  requestId: string,
  request: {
    named: () => Identifier | undefined;
    namedProfile: () => Promise<Person>;
    need: (person: Person | undefined) => Person;
  },
): [string, Step][] {
  const { named, namedProfile, need } = request;
  const { eventStore, warehouse } = deps;
  const waitMs = deps.waitMs ?? 60_000;
  return [
    [
      'resolve',
      async () => {
        const identifier = named();
        const ofProfile = identifier ? undefined : await namedProfile();
        const asked = identifier ?? ofProfile?.identifiers[0];
        // A profile without identifiers has nothing in the graph: its warehouse rows are all there is.
        if (!asked) return { state: 'running', person: ofProfile, counts: sizeOf(need(ofProfile)) };
        await deps.suppression.add([asked]);
        const answer = await askResolver(deps, requestId, asked, waitMs);
        const person: Person = {
          profileIds: [...new Set([...answer.profileIds, ...(ofProfile?.profileIds ?? [])])],
          identifiers: answer.identifiers,
        };
        return { state: 'running', person, counts: sizeOf(person) };
      },
    ],
    [
      'suppress',
      async (person) => {
        await deps.suppression.add(need(person).identifiers);
        return { state: 'running', counts: { suppressed: need(person).identifiers.length } };
      },
    ],
    [
      'destroy_keys',
      async (person) => {
        const subjects = need(person).identifiers.map(subjectStream);
        const destroyed = await deps.keyStore.destroyMany(subjects);
        return { state: 'running', counts: { data_keys: destroyed } };
      },
    ],
    [
      'await_projection',
      async () => {
        const answered = await answerPosition(eventStore, requestId);
        if (answered) await waitForProjection(deps, answered, waitMs);
        return { state: 'running' };
      },
    ],
    [
      'delete_warehouse',
      async (person) => ({
        state: 'running',
        counts: prefixKeys(
          'clickhouse.',
          await deletePersonRows(warehouse, requestId, need(person)),
        ),
      }),
    ],
    [
      'delete_streams',
      async (person) => {
        const streams = streamsOf(need(person));
        const events = await countEvents(eventStore, streams);
        for (const stream of streams) await eventStore.deleteStream(stream);
        await eventStore.scrub();
        return { state: 'verifying', counts: { log_streams: streams.length, log_events: events } };
      },
    ],
    [
      'verify',
      async (person) => {
        let left = await leftovers(deps, requestId, need(person));
        if (left.length > 0) {
          // A fact that slipped in before the suppression: the projection wrote it since.
          await deletePersonRows(warehouse, requestId, need(person));
          left = await leftovers(deps, requestId, need(person));
        }
        if (left.length > 0)
          throw new Error(`erasure not verified: rows left in ${left.join(', ')}`);
        return { state: 'verifying' };
      },
    ],
    [
      'complete',
      async () => {
        await eventStore.deleteStream(erasureStream(requestId));
        await eventStore.scrub();
        await deps.requests.forgetSubject(requestId);
        return { state: 'completed' };
      },
    ],
  ];
}

/** What still holds the person: table names with rows, or streams that can still be read. */
async function leftovers(
  deps: PrivacyRunnerDeps,
  requestId: string,
  person: Person,
): Promise<string[]> {
  const counts = await countPersonRows(deps.warehouse, requestId, person);
  const tables = Object.entries(counts)
    .filter(([, rows]) => rows > 0)
    .map(([table]) => `clickhouse.${table}`);
  const streams: string[] = [];
  for (const stream of streamsOf(person))
    if (await readable(deps.eventStore, stream)) streams.push('log');
  return [...tables, ...new Set(streams)];
}

async function readable(eventStore: EventStore, stream: string): Promise<boolean> {
  try {
    for await (const _ of eventStore.readStream(stream, { maxCount: 1 })) return true;
    return false;
  } catch (error) {
    if (error instanceof StreamDeletedError || error instanceof StreamNotFoundError) return false;
    throw error;
  }
}

/** Appends the erasure command (once) and waits for the resolver's answer. */
async function askResolver(
  deps: PrivacyRunnerDeps,
  requestId: string,
  identifier: Identifier,
  waitMs: number,
): Promise<ErasureResolved> {
  const stream = erasureStream(requestId);
  await appendOnce(deps.eventStore, stream, [
    {
      id: deterministicEventId('privacy', requestId, 'erase'),
      type: IdentityCommandTypes.erase,
      data: {
        identifier: { type: identifier.type, hash: identifier.hash },
        requestId,
        requestedBy: 'privacy',
      },
    },
  ]);
  const answer = await poll(waitMs, async () => {
    for await (const event of readStreamIfExists(deps.eventStore, stream))
      if (event.type === ERASURE_RESOLVED) return ErasureResolved.parse(event.data);
    return undefined;
  });
  if (!answer)
    throw new NotYetError(
      `the identity resolver has not answered erasure ${requestId} within ${waitMs} ms; is it running?`,
    );
  return answer;
}

async function answerPosition(
  eventStore: EventStore,
  requestId: string,
): Promise<Position | undefined> {
  for await (const event of readStreamIfExists(eventStore, erasureStream(requestId)))
    if (event.type === ERASURE_RESOLVED) return event.position;
  return undefined;
}

async function waitForProjection(
  deps: PrivacyRunnerDeps,
  position: Position,
  waitMs: number,
): Promise<void> {
  const reached = await poll(waitMs, async () => {
    const projected = await deps.projectedUpTo();
    return projected && comparePositions(projected, position) >= 0 ? true : undefined;
  });
  if (!reached)
    throw new NotYetError(
      `the warehouse projection has not reached the erasure within ${waitMs} ms; is the projector running?`,
    );
}

async function poll<T>(
  waitMs: number,
  check: () => Promise<T | undefined>,
): Promise<T | undefined> {
  const deadline = Date.now() + waitMs;
  for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
    const found = await check();
    if (found !== undefined || Date.now() >= deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** The person's streams in the log: each identifier's raw events and each profile's decisions. */
function streamsOf(person: Person): string[] {
  return [...person.identifiers.map(subjectStream), ...person.profileIds.map(profileStream)];
}

/** Events in the streams; a stream already deleted (a step run again after a crash) has none. */
async function countEvents(eventStore: EventStore, streams: readonly string[]): Promise<number> {
  let events = 0;
  for (const stream of streams) {
    try {
      for await (const _ of readStreamIfExists(eventStore, stream)) events++;
    } catch (error) {
      if (!(error instanceof StreamDeletedError)) throw error;
    }
  }
  return events;
}

function withNamed(person: Person | undefined, identifier: Identifier | undefined): Person {
  const identifiers = person?.identifiers ?? [];
  const named = identifier ? { type: identifier.type, hash: identifier.hash } : undefined;
  return {
    profileIds: person?.profileIds ?? [],
    identifiers:
      named && !identifiers.some((other) => other.hash === named.hash)
        ? [named, ...identifiers]
        : identifiers,
  };
}

function sizeOf(person: Person): Record<string, number> {
  return { profiles: person.profileIds.length, identifiers: person.identifiers.length };
}

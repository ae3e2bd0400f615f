/**
 * Privacy requests as events: each request has a stream of its own (filed,
 * then one event per step done), and `privacy-requests` indexes them in
 * filing order. A request's state is the fold of its stream, so a process
 * that crashed mid-request finds where it stood and goes on.
 *
 * What a request names — the identifier, and later the person it resolved
 * to — is sealed under the request's own data key. The runner reads it while
 * the request runs; an erasure destroys the key when it completes, after
 * which the request keeps only types, times and counts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { EventStore, JsonObject, RecordedEvent } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import { ErrorCodes, TandemError } from '../schemas/errors.js';
import {
  PRIVACY_REQUESTS_STREAM,
  PrivacyEventTypes,
  type PrivacyRequestBody,
  PrivacyRequestFiled,
  PrivacyRequestProgressed,
  type PrivacyRequestState,
  type PrivacyRequestView,
  privacyRequestStream,
} from '../schemas/privacy.js';
import type { KeyStore } from './keystore.js';
import type { Person } from './person.js';
import { seal, unseal } from './seal.js';

/** A request with what the runner needs: its view, the identifier it names and the person, while readable. */
export interface LoadedRequest {
  readonly view: PrivacyRequestView;
  /** `TYPE:VALUE` as filed; undefined once the request's key is destroyed. */
  readonly identifier: string | undefined;
  /** The person it resolved to; undefined before resolving or once the key is destroyed. */
  readonly person: Person | undefined;
  /** Steps done, by name. */
  readonly done: ReadonlySet<string>;
}

export interface StepRecord {
  readonly step: string;
  readonly state: PrivacyRequestState;
  readonly counts?: Record<string, number>;
  readonly person?: Person;
  readonly error?: string;
}

export interface PrivacyRequests {
  file(body: PrivacyRequestBody, requestedBy: string): Promise<PrivacyRequestView>;
  /** The request, or NOT_FOUND. */
  get(requestId: string): Promise<PrivacyRequestView>;
  /** The newest requests first. */
  list(limit: number): Promise<PrivacyRequestView[]>;
  load(requestId: string): Promise<LoadedRequest>;
  record(requestId: string, step: StepRecord): Promise<void>;
  /** Ids of the requests filed from index revision `from` on, oldest first, and the revision to read next. */
  filed(from: number): Promise<{ ids: string[]; next: number }>;
  /** Destroys the request's key: what it named becomes unreadable. */
  forgetSubject(requestId: string): Promise<void>;
}

export function openPrivacyRequests(deps: {
  readonly eventStore: EventStore;
  readonly keyStore: KeyStore;
}): PrivacyRequests {
  const { eventStore, keyStore } = deps;
  const keyOf = (requestId: string) => keyStore.keyFor(privacyRequestStream(requestId));

  async function read(requestId: string): Promise<RecordedEvent[]> {
    const events: RecordedEvent[] = [];
    for await (const event of readStreamIfExists(eventStore, privacyRequestStream(requestId)))
      events.push(event);
    if (events.length === 0)
      throw new TandemError(ErrorCodes.NOT_FOUND, `no privacy request ${requestId}`, { requestId });
    return events;
  }

  async function load(requestId: string): Promise<LoadedRequest> {
    const [first, ...rest] = await read(requestId);
    const filed = PrivacyRequestFiled.parse(first?.data);
    const progress = rest.map((event) => PrivacyRequestProgressed.parse(event.data));
    const view = viewOf(filed, progress);
    const sealedPerson = progress.findLast((event) => event.sealed)?.sealed;
    const key = await keyStore.find(filed.sealed.keyId);
    return {
      view,
      identifier: key
        ? (unseal(filed.sealed, key, requestId) as { identifier: string }).identifier
        : undefined,
      person:
        key && sealedPerson && sealedPerson.keyId === key.id
          ? (unseal(sealedPerson, key, `${requestId}/person`) as Person)
          : undefined,
      done: new Set(progress.map((event) => event.step)),
    };
  }

  return {
    async file(body, requestedBy) {
      const requestId = `prq_${randomBytes(12).toString('base64url')}`;
      const at = new Date().toISOString();
      const filed: PrivacyRequestFiled = {
        requestId,
        type: body.type,
        identifierType: body.identifier.slice(0, body.identifier.indexOf(':')),
        sealed: seal({ identifier: body.identifier }, await keyOf(requestId), requestId),
        requestedBy,
        at,
      };
      const event = { type: PrivacyEventTypes.filed, data: filed as unknown as JsonObject };
      await eventStore.append(privacyRequestStream(requestId), [{ id: randomUUID(), ...event }], {
        expected: 'no_stream',
      });
      await eventStore.append(PRIVACY_REQUESTS_STREAM, [
        {
          id: randomUUID(),
          type: PrivacyEventTypes.filed,
          data: { requestId, type: body.type, at },
        },
      ]);
      return viewOf(filed, []);
    },
    get: async (requestId) => (await load(requestId)).view,
    async list(limit) {
      const views: PrivacyRequestView[] = [];
      for await (const event of readStreamIfExists(eventStore, PRIVACY_REQUESTS_STREAM, {
        direction: 'backwards',
        maxCount: limit,
      }))
        views.push((await load(String(event.data.requestId))).view);
      return views;
    },
    load,
    async record(requestId, step) {
      const { person, ...rest } = step;
      const progressed: PrivacyRequestProgressed = {
        requestId,
        ...rest,
        at: new Date().toISOString(),
        ...(person ? { sealed: seal(person, await keyOf(requestId), `${requestId}/person`) } : {}),
      };
      await eventStore.append(privacyRequestStream(requestId), [
        {
          id: randomUUID(),
          type: PrivacyEventTypes.progressed,
          data: progressed as unknown as JsonObject,
        },
      ]);
    },
    async filed(from) {
      const ids: string[] = [];
      let next = from;
      for await (const event of readStreamIfExists(eventStore, PRIVACY_REQUESTS_STREAM, {
        fromRevision: from,
      })) {
        ids.push(String(event.data.requestId));
        next = event.revision + 1;
      }
      return { ids, next };
    },
    async forgetSubject(requestId) {
      await keyStore.destroy(privacyRequestStream(requestId));
    },
  };
}

function viewOf(
  filed: PrivacyRequestFiled,
  progress: readonly PrivacyRequestProgressed[],
): PrivacyRequestView {
  const times: PrivacyRequestView['times'] = { received: filed.at };
  for (const event of progress) times[event.state] ??= event.at;
  const last = progress.at(-1);
  const report: Record<string, number> = {};
  for (const event of progress)
    for (const [place, count] of Object.entries(event.counts ?? {})) report[place] = count;
  return {
    id: filed.requestId,
    type: filed.type,
    identifierType: filed.identifierType,
    state: last?.state ?? 'received',
    requestedBy: filed.requestedBy,
    times,
    steps: progress.map((event) => ({
      step: event.step,
      at: event.at,
      ...(event.counts ? { counts: event.counts } : {}),
    })),
    ...(Object.keys(report).length > 0 ? { report } : {}),
    ...(last?.error ? { error: last.error } : {}),
  };
}

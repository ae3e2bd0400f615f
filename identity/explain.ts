/**
 * Explanations: a profile's history read back from its stream (and the
 * streams of the profiles it absorbed), and each decision in words.
 */
import type { EventReader, RecordedEvent } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import type { Identifier } from '../schemas/identifier.js';
import {
  IdentityEventTypes as E,
  type IdentityEvent,
  IdentityEvent as IdentityEventSchema,
  profileStream,
} from '../schemas/identity.js';

/** A decision as stored: the event and where it is. */
export interface StoredDecision {
  readonly event: IdentityEvent;
  readonly eventId: string;
  readonly position: RecordedEvent['position'];
}

/**
 * Every decision that shaped a profile, in decision order: its own, and those
 * of each profile it absorbed up to the merge, recursively.
 */
export async function profileHistory(
  reader: Pick<EventReader, 'readStream'>,
  profileId: string,
): Promise<StoredDecision[]> {
  const decisions: StoredDecision[] = [];
  const seen = new Set<string>();
  const visit = async (id: string): Promise<void> => {
    if (seen.has(id)) return;
    seen.add(id);
    for (const decision of await readDecisions(reader, id)) {
      decisions.push(decision);
      if (decision.event.type === E.merged) await visit(decision.event.absorbed);
    }
  };
  await visit(profileId);
  return decisions.sort((a, b) => a.event.seq - b.event.seq);
}

async function readDecisions(
  reader: Pick<EventReader, 'readStream'>,
  profileId: string,
): Promise<StoredDecision[]> {
  const out: StoredDecision[] = [];
  for await (const event of readStreamIfExists(reader, profileStream(profileId)))
    out.push({
      event: IdentityEventSchema.parse(event.data),
      eventId: event.id,
      position: event.position,
    });
  return out;
}

/** `email:Xk3v9QpL2a…`: enough of the hash to tell identifiers apart, no more. */
export function shortIdentifier(identifier: Identifier): string {
  return `${identifier.type}:${identifier.hash.slice(0, 10)}…`;
}

const list = (identifiers: readonly Identifier[]) => identifiers.map(shortIdentifier).join(', ');

/** One decision in words, with the fact that caused it. */
export function describeDecision(event: IdentityEvent): string {
  const because = `(event ${event.evidence.eventId} at ${event.evidence.position})`;
  switch (event.type) {
    case E.created:
      return `${event.profileId} created with ${list(event.identifiers)}: ${
        {
          first_seen: 'first seen together',
          split: `split from ${event.from}`,
          refused: `kept apart from ${event.from} by a rule`,
          shared: 'a shared identifier on its own',
        }[event.reason]
      } ${because}`;
    case E.linked:
      return `${event.profileId} linked ${list(event.identifiers)}, seen with ${shortIdentifier(event.via)} ${because}`;
    case E.merged:
      return `${event.profileId} absorbed ${event.absorbed} (${event.identifiers.length} identifiers): ${shortIdentifier(event.bridge[0])} seen with ${shortIdentifier(event.bridge[1])} ${because}`;
    case E.absorbed:
      return `${event.profileId} became part of ${event.into} ${because}`;
    case E.refused:
      return `${event.profileId} refused ${list(event.identifiers)}${
        event.otherProfileId ? ` of ${event.otherProfileId}` : ''
      }: ${event.rule}, ${event.detail} ${because}`;
    case E.shared:
      return `${shortIdentifier(event.identifier)} is shared (${event.detail}); it left ${event.profileId} for ${event.sharedProfileId} ${because}`;
    case E.ignored:
      return `${shortIdentifier(event.identifier)} never links (a placeholder value) ${because}`;
    case E.split:
      return `${event.profileId} ${
        event.parts.length === 0
          ? 'keeps two identifiers apart'
          : `split: ${event.parts.map((part) => part.profileId).join(', ')} left`
      } (${event.rule}: ${event.detail}) ${because}`;
    case E.forgotten:
      return `${event.profileId} forgot ${shortIdentifier(event.identifier)} ${because}`;
    case E.consent:
      return `${event.profileId} consent: ${Object.entries(event.purposes)
        .map(
          ([purpose, state]) =>
            `${purpose} ${state.granted ? 'granted' : 'withdrawn'} via ${state.source} at ${state.at}`,
        )
        .join('; ')} ${because}`;
    case E.traits:
      return `${event.profileId} traits: ${Object.entries(event.traits)
        .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
        .join(', ')} ${because}`;
  }
}

/**
 * Operators' commands to the resolver. They are appended to the log like any
 * fact, so the resolver meets them in log order and a rebuild decides the
 * same; the resolver records what it did in the profiles' streams.
 */
import { randomUUID } from 'node:crypto';
import type { AppendResult, EventAppender, JsonObject } from '../eventstore/event-store.js';
import {
  ForgetRequested,
  IDENTITY_COMMANDS_STREAM,
  IdentityCommandTypes,
  UnlinkRequested,
} from '../schemas/identity.js';

/** Asks the resolver to split two identifiers apart and keep them apart. */
export function requestUnlink(
  store: EventAppender,
  command: UnlinkRequested,
): Promise<AppendResult> {
  return appendCommand(store, IdentityCommandTypes.unlink, UnlinkRequested.parse(command));
}

/** Asks the resolver to remove an identifier from the graph (erasure). */
export function requestForget(
  store: EventAppender,
  command: ForgetRequested,
): Promise<AppendResult> {
  return appendCommand(store, IdentityCommandTypes.forget, ForgetRequested.parse(command));
}

function appendCommand(store: EventAppender, type: string, data: object): Promise<AppendResult> {
  return store.append(IDENTITY_COMMANDS_STREAM, [
    { id: randomUUID(), type, data: data as JsonObject },
  ]);
}

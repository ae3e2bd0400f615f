/**
 * The identity resolver at run time: a checkpointed subscription to `$all`
 * that feeds every fact and command to the graph and appends its decisions
 * to the profiles' streams.
 *
 * Exactly-once in effect: decisions get deterministic ids (from the fact's
 * id, their index and the rules), so a restart that re-decides facts whose
 * decisions are already in the log appends nothing new. A snapshot of the
 * graph is written only after every decision up to its position is durable,
 * and a restart resumes from it rather than from the start of the log.
 *
 * Erasure: an erasure command is answered (in its own stream) only once the
 * decisions forgetting the person are durable and a snapshot without them is
 * written, so no restart brings back a graph that still holds them. A
 * profile stream an erasure already deleted takes no further decisions.
 *
 * Batching: decisions are appended in batches (by count and time), one
 * append per profile stream, all of a batch in flight together; at most two
 * batches are in flight, which holds back reading when appends fall behind.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { appendOnce, deterministicEventId } from '../eventstore/append-once.js';
import {
  comparePositions,
  type EventData,
  type EventStore,
  formatPosition,
  type JsonObject,
  type Position,
  parsePosition,
  type RecordedEvent,
  StreamDeletedError,
} from '../eventstore/event-store.js';
import { type LogLag, lagBehind } from '../eventstore/log-lag.js';
import type { Identifier } from '../schemas/identifier.js';
import {
  ERASURE_RESOLVED,
  type ErasureResolved,
  type IdentityEvent,
  type IdentityRules,
  IGNORED_IDENTIFIERS_STREAM,
  profileStream,
} from '../schemas/identity.js';
import { type EraseCommand, identityInput } from './fact.js';
import { IdentityGraph } from './graph.js';
import { type GraphSnapshot, SNAPSHOT_VERSION } from './graph.snapshot.js';

export interface ResolverOptions {
  readonly eventStore: EventStore;
  readonly rules: IdentityRules;
  /** Where the graph's snapshot is kept; without one, every start replays the log. */
  readonly snapshotFile?: string | undefined;
  /** `false`: start from the beginning of the log even when a snapshot exists (a rebuild); it is overwritten. */
  readonly resume?: boolean;
  /** `false`: decide in memory only, append nothing (to look at profiles without a resolver's role). */
  readonly appendDecisions?: boolean;
  /** Facts per append batch. */
  readonly batchSize?: number;
  /** Longest a decision waits for its batch, in ms. */
  readonly batchDelayMs?: number;
  /** Facts between snapshots while following the log. */
  readonly snapshotEvery?: number;
  /** Told about snapshots written and rules that changed; a pino logger fits. */
  readonly log?: {
    info(fields: object, message: string): void;
    warn(fields: object, message: string): void;
  };
}

export interface ResolverStatus {
  /** The last log position whose decisions are durable. */
  readonly position: string | undefined;
  readonly facts: number;
  readonly decisions: number;
  readonly profiles: number;
  readonly identifiers: number;
}

export interface Resolver {
  readonly graph: IdentityGraph;
  /** Processes everything in the log now, and returns once its decisions are durable. */
  catchUp(): Promise<ResolverStatus>;
  /** Catches up, then follows the log until `signal` aborts; then flushes and snapshots. */
  follow(signal: AbortSignal): Promise<void>;
  /** Writes a snapshot of the graph at its durable position. */
  snapshot(): Promise<void>;
  status(): ResolverStatus;
  /** How far behind the log head its durable decisions are. */
  lag(): Promise<LogLag>;
}

interface SnapshotFile {
  readonly position: string;
  readonly rules: string;
  readonly graph: GraphSnapshot;
}

/** Opens the resolver, restoring the graph from its snapshot when there is one. */
export async function openResolver(options: ResolverOptions): Promise<Resolver> {
  const rulesDigest = digestRules(options.rules);
  let saved =
    options.snapshotFile && options.resume !== false
      ? await readSnapshot(options.snapshotFile)
      : undefined;
  if (saved && saved.graph.v !== SNAPSHOT_VERSION) {
    options.log?.warn(
      { snapshot: options.snapshotFile, version: saved.graph.v },
      'the identity snapshot is from another version: replaying the log instead',
    );
    saved = undefined;
  }
  if (saved && saved.rules !== rulesDigest)
    options.log?.warn(
      { snapshot: options.snapshotFile },
      'the identity rules changed since the last snapshot: they apply to facts from now on; run `tandem replay --identity` to re-decide the whole log',
    );
  const graph = saved
    ? IdentityGraph.restore(saved.graph, options.rules)
    : new IdentityGraph(options.rules);
  return new LogResolver(
    options,
    graph,
    saved ? parsePosition(saved.position) : undefined,
    rulesDigest,
    await options.eventStore.headPosition(),
  );
}

class LogResolver implements Resolver {
  private readonly batchSize: number;
  private readonly batchDelayMs: number;
  private readonly snapshotEvery: number;
  /** Position of the last input read (decided). */
  private read: Position | undefined;
  /** Position up to which every decision is durable. */
  private durable: Position | undefined;
  private pending = new Map<string, EventData[]>();
  private pendingFacts = 0;
  private pendingUpTo: Position | undefined;
  /** Whether the pending batch re-decides facts a run before this one may have decided already. */
  private pendingRedecided = false;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private failure: unknown;
  private facts = 0;
  private decisions = 0;
  private sinceSnapshot = 0;

  constructor(
    private readonly options: ResolverOptions,
    readonly graph: IdentityGraph,
    from: Position | undefined,
    private readonly rulesDigest: string,
    /**
     * The log's head when this resolver opened. Decisions on facts up to it
     * may be in the log already (a rebuild, or a resume from a snapshot older
     * than the last run's appends), batched otherwise than now.
     */
    private readonly headAtOpen: Position | undefined,
  ) {
    this.batchSize = options.batchSize ?? 5000;
    this.batchDelayMs = options.batchDelayMs ?? 20;
    this.snapshotEvery = options.snapshotEvery ?? 500_000;
    this.read = from;
    this.durable = from;
  }

  async catchUp(): Promise<ResolverStatus> {
    const store = this.options.eventStore;
    for await (const event of store.readAll(this.read ? { from: this.read } : {})) {
      if (this.read && samePosition(event.position, this.read)) continue;
      await this.take(event);
    }
    await this.flush();
    return this.status();
  }

  async follow(signal: AbortSignal): Promise<void> {
    await this.catchUp();
    try {
      for await (const event of this.options.eventStore.subscribeAll({
        ...(this.read ? { from: this.read } : {}),
        signal,
      })) {
        await this.take(event);
        if (this.sinceSnapshot >= this.snapshotEvery) {
          await this.flush();
          await this.snapshot();
        }
      }
    } finally {
      await this.flush();
      if (this.options.snapshotFile) await this.snapshot();
    }
  }

  async snapshot(): Promise<void> {
    const file = this.options.snapshotFile;
    if (!file || !this.durable) return;
    await this.flush();
    const position = formatPosition(this.durable as Position);
    const body: SnapshotFile = {
      position,
      rules: this.rulesDigest,
      graph: this.graph.toSnapshot(),
    };
    await mkdir(dirname(file), { recursive: true });
    const aside = `${file}.${process.pid}.tmp`;
    await writeFile(aside, pack(body));
    await rename(aside, file);
    this.sinceSnapshot = 0;
    this.options.log?.info(
      { position, profiles: this.graph.profileCount },
      'identity snapshot written',
    );
  }

  lag(): Promise<LogLag> {
    return lagBehind(this.options.eventStore, this.durable);
  }

  status(): ResolverStatus {
    return {
      position: this.durable && formatPosition(this.durable),
      facts: this.facts,
      decisions: this.decisions,
      profiles: this.graph.profileCount,
      identifiers: this.graph.identifierCount,
    };
  }

  /** Decides one event; queues its decisions; flushes a full batch. */
  private async take(event: RecordedEvent): Promise<void> {
    if (this.failure) throw this.failure;
    this.read = event.position;
    const input = identityInput(event);
    const person = input?.kind === 'erase' ? this.graph.personOf(input.identifier.hash) : undefined;
    if (input) {
      const decisions = this.graph.resolve(input);
      this.facts++;
      this.sinceSnapshot++;
      for (const [index, decision] of decisions.entries()) this.queue(event.id, index, decision);
      this.decisions += decisions.length;
    }
    this.pendingUpTo = event.position;
    this.pendingFacts++;
    if (this.headAtOpen && comparePositions(event.position, this.headAtOpen) <= 0)
      this.pendingRedecided = true;
    if (input?.kind === 'erase') await this.answerErasure(event, input, person);
    else if (this.pendingFacts >= this.batchSize) {
      // Back-pressure: never more than two batches in flight.
      if (this.inFlight >= 2) await this.flushing;
      this.startFlush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.startFlush(), this.batchDelayMs);
    }
  }

  /** Makes the forgetting durable (decisions, then a snapshot), then answers with who was forgotten. */
  private async answerErasure(
    event: RecordedEvent,
    command: EraseCommand,
    person: { profileIds: string[]; identifiers: Identifier[] } | undefined,
  ): Promise<void> {
    await this.flush();
    if (this.options.appendDecisions === false) return;
    await this.snapshot();
    const named = { type: command.identifier.type, hash: command.identifier.hash };
    const identifiers = person?.identifiers ?? [];
    const answer: ErasureResolved = {
      requestId: command.requestId,
      profileIds: person?.profileIds ?? [],
      identifiers: identifiers.some((identifier) => identifier.hash === named.hash)
        ? identifiers
        : [named, ...identifiers],
    };
    const id = deterministicEventId('identity', this.rulesDigest, event.id, 'answer');
    await appendOnce(this.options.eventStore, event.stream, [
      { id, type: ERASURE_RESOLVED, data: answer as unknown as JsonObject },
    ]).catch(ignoreDeleted);
  }

  private queue(factId: string, index: number, decision: IdentityEvent): void {
    if (this.options.appendDecisions === false) return;
    const stream =
      'profileId' in decision ? profileStream(decision.profileId) : IGNORED_IDENTIFIERS_STREAM;
    const events = this.pending.get(stream);
    const data: EventData = {
      id: deterministicEventId('identity', this.rulesDigest, factId, String(index)),
      type: decision.type,
      data: decision as unknown as JsonObject,
    };
    if (events) events.push(data);
    else this.pending.set(stream, [data]);
  }

  /** Sends the pending batch on its way, after the batch before it. */
  private startFlush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pendingFacts === 0) return;
    const batch = this.pending;
    const upTo = this.pendingUpTo;
    const redecided = this.pendingRedecided;
    this.pending = new Map();
    this.pendingFacts = 0;
    this.pendingRedecided = false;
    this.inFlight++;
    const store = this.options.eventStore;
    this.flushing = this.flushing
      .then(async () => {
        await Promise.all(
          [...batch].map(([stream, events]) =>
            appendOnce(store, stream, events, { mayBeStored: redecided }).catch(ignoreDeleted),
          ),
        );
        this.durable = upTo;
      })
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.inFlight--;
      });
  }

  private async flush(): Promise<void> {
    this.startFlush();
    await this.flushing;
    if (this.failure) throw this.failure;
  }
}

/** A stream an erasure deleted takes no more events: what was to be written there is moot. */
function ignoreDeleted(error: unknown): void {
  if (!(error instanceof StreamDeletedError)) throw error;
}

/** The graph in a snapshot file, or undefined when there is none. */
export async function readGraphSnapshot(
  file: string,
  rules: IdentityRules,
): Promise<{ graph: IdentityGraph; position: string } | undefined> {
  const saved = await readSnapshot(file);
  if (!saved || saved.graph.v !== SNAPSHOT_VERSION) return undefined;
  return { graph: IdentityGraph.restore(saved.graph, rules), position: saved.position };
}

async function readSnapshot(file: string): Promise<SnapshotFile | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return unpack(bytes) as SnapshotFile;
}

function digestRules(rules: IdentityRules): string {
  return createHash('sha256').update(JSON.stringify(rules)).digest('base64url').slice(0, 16);
}

function samePosition(a: Position, b: Position): boolean {
  return a.commit === b.commit && a.prepare === b.prepare;
}

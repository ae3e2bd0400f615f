/**
 * The projector: a checkpointed subscription to the log that writes the rows
 * of `rows.ts` to ClickHouse in batches.
 *
 * Exactly-once in effect. A batch's rows are inserted first, then the
 * checkpoint (the position of its last event) in `projector_checkpoints`. A
 * crash between the two re-delivers the batch on restart; its rows are the
 * same rows with the same versions, and every table is a ReplacingMergeTree
 * read with `final = 1`, so nothing counts twice. A crash before the rows
 * landed loses nothing, since the checkpoint had not moved.
 *
 * Batches close at `batchEvents` events or `flushMs` after their first
 * event, whichever comes first (ClickHouse wants thousands of rows per
 * insert). At most one batch is being written while the next one fills: a
 * batch whose time is up while a write is in flight keeps filling and goes
 * out when that write ends, and a full one makes reading wait
 * (back-pressure; memory holds two batches at most, however slow the
 * warehouse is).
 */
import type { Logger } from 'pino';
import {
  comparePositions,
  type EventStore,
  formatPosition,
  type Position,
  type RecordedEvent,
} from '../eventstore/event-store.js';
import { type LogLag, lagBehind } from '../eventstore/log-lag.js';
import {
  hasAgedOut,
  type RetentionCutoffs,
  type RetentionPolicy,
  retentionCutoffs,
} from '../schemas/retention.js';
import { CHECKPOINTS, columnNames, projectedTable } from '../warehouse/tables.js';
import { clickhouseTime, EncodedRows, type Warehouse } from '../warehouse/warehouse.js';
import { projectEvent, type Row, type RowContext, type RowSink } from './rows.js';

export interface ProjectorOptions {
  readonly eventStore: EventStore;
  readonly warehouse: Warehouse;
  /** Identifier types, strongest first (the identity rules' priority). */
  readonly priority: readonly string[];
  /** Names the checkpoint; a rebuild uses its own. */
  readonly name?: string;
  /** Table name → the table written instead (a rebuild writes shadow tables). */
  readonly tableNames?: Readonly<Record<string, string>>;
  readonly batchEvents?: number;
  readonly flushMs?: number;
  readonly log?: Logger;
  /** Days each kind of event is kept: an event that aged out is not written (retention). */
  readonly retention?: RetentionPolicy;
}

export interface ProjectorStatus {
  readonly name: string;
  /** Position of the last event whose rows are written, as `commit/prepare`. */
  readonly position: string | undefined;
  /** Events handled since this projector opened. */
  readonly events: number;
  /** Rows written since this projector opened. */
  readonly rows: number;
}

export interface Projector {
  /** Writes everything in the log up to its head when called; resolves once it is durable. */
  catchUp(): Promise<ProjectorStatus>;
  /** Catches up, then follows the log until `signal` aborts; the last batch is written first. */
  follow(signal: AbortSignal): Promise<void>;
  status(): ProjectorStatus;
  /** How far behind the log head the written rows are. */
  lag(): Promise<LogLag>;
}

export const DEFAULT_PROJECTOR = 'warehouse';

/** Opens the projector `options.name`, resuming from its checkpoint. */
export async function openProjector(options: ProjectorOptions): Promise<Projector> {
  const name = options.name ?? DEFAULT_PROJECTOR;
  const checkpoint = await readCheckpoint(options.warehouse, name);
  return new WarehouseProjector({ ...options, name }, checkpoint);
}

/** The checkpoint of projector `name`, or undefined before its first batch. */
export async function readCheckpoint(
  warehouse: Warehouse,
  name: string,
): Promise<{ position: Position; events: number } | undefined> {
  const result = await warehouse.client.query({
    query: `SELECT commit, prepare, events FROM ${warehouse.table(CHECKPOINTS.name)}
            WHERE projector = {name:String}`,
    query_params: { name },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ commit: number; prepare: number; events: number }>();
  return (
    row && {
      position: { commit: BigInt(row.commit), prepare: BigInt(row.prepare) },
      events: row.events,
    }
  );
}

/** Writes the checkpoint of projector `name`. */
export async function writeCheckpoint(
  warehouse: Warehouse,
  name: string,
  position: Position,
  events: number,
): Promise<void> {
  const rows = new EncodedRows(warehouse.table(CHECKPOINTS.name), columnNames(CHECKPOINTS));
  rows.add({
    projector: name,
    commit: position.commit.toString(),
    prepare: position.prepare.toString(),
    events,
    updated_at: microsecondsNow(),
  });
  await warehouse.writer.insert(rows);
}

/** The rows of a run of events, by table, encoded as they come (see `EncodedRows`). */
class Batch implements RowSink {
  readonly rows = new Map<string, EncodedRows>();
  events = 0;
  rowCount = 0;
  last: RecordedEvent | undefined;
  /** @param target the qualified name a projected table's rows go to */
  constructor(private readonly target: (table: string) => string) {}
  add(table: string, row: Row): void {
    let rows = this.rows.get(table);
    if (!rows) {
      rows = new EncodedRows(this.target(table), columnNames(projectedTable(table)));
      this.rows.set(table, rows);
    }
    rows.add(row);
    this.rowCount++;
  }
}

class WarehouseProjector implements Projector {
  private readonly context: RowContext;
  private cutoffs: { at: number; by: RetentionCutoffs } | undefined;
  private readonly batchEvents: number;
  private readonly flushMs: number;
  private batch: Batch;
  private readonly target: (table: string) => string;
  /** The write in flight, if any; it ends with `failure` set rather than rejecting. */
  private writing: Promise<void> | undefined;
  /** The filling batch's time ran out during a write: it goes out when that write ends. */
  private due = false;
  private timer: NodeJS.Timeout | undefined;
  private failure: unknown;
  /** Last event read (in the batch being filled or written). */
  private read: Position | undefined;
  /** Last event whose rows and checkpoint are written. */
  private durable: Position | undefined;
  private totalEvents: number;
  private events = 0;
  private rows = 0;

  constructor(
    private readonly options: ProjectorOptions & { name: string },
    checkpoint: { position: Position; events: number } | undefined,
  ) {
    this.context = { priority: options.priority };
    const { warehouse, tableNames } = options;
    this.target = (table) => warehouse.table(tableNames?.[table] ?? table);
    this.batch = new Batch(this.target);
    this.batchEvents = options.batchEvents ?? 20_000;
    this.flushMs = options.flushMs ?? 500;
    this.read = checkpoint?.position;
    this.durable = checkpoint?.position;
    this.totalEvents = checkpoint?.events ?? 0;
  }

  async catchUp(): Promise<ProjectorStatus> {
    const store = this.options.eventStore;
    const head = await store.headPosition();
    if (head && (!this.read || this.read.commit < head.commit)) {
      for await (const event of store.readAll(this.read ? { from: this.read } : {})) {
        if (this.read && comparePositions(event.position, this.read) <= 0) continue;
        await this.take(event);
        if (event.position.commit >= head.commit) break;
      }
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
      }
    } finally {
      await this.flush();
    }
  }

  status(): ProjectorStatus {
    return {
      name: this.options.name,
      position: this.durable && formatPosition(this.durable),
      events: this.events,
      rows: this.rows,
    };
  }

  lag(): Promise<LogLag> {
    return lagBehind(this.options.eventStore, this.durable);
  }

  /** Whether retention removes the event (the cut-offs move on once a minute). */
  private agedOut(event: RecordedEvent): boolean {
    const retention = this.options.retention;
    if (!retention) return false;
    const now = Date.now();
    if (!this.cutoffs || now - this.cutoffs.at > 60_000)
      this.cutoffs = { at: now, by: retentionCutoffs(retention, now) };
    return hasAgedOut(event, this.cutoffs.by);
  }

  private async take(event: RecordedEvent): Promise<void> {
    if (this.failure) throw this.failure;
    this.read = event.position;
    const batch = this.batch;
    if (!this.agedOut(event)) projectEvent(event, this.context, batch);
    batch.events++;
    batch.last = event;
    if (batch.events >= this.batchEvents) {
      // Back-pressure: the batch before this one must be written first.
      await this.writesEnded();
      this.startWrite();
    } else if (!this.timer && !this.due) {
      this.timer = setTimeout(() => this.startWrite(), this.flushMs);
    }
  }

  /** Sends the filling batch on its way, or marks it due when a write is in flight. */
  private startWrite(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.batch;
    if (batch.events === 0) return;
    if (this.writing) {
      this.due = true;
      return;
    }
    this.due = false;
    this.batch = new Batch(this.target);
    this.writing = this.write(batch)
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.writing = undefined;
        if (this.due) this.startWrite();
      });
  }

  /** Resolves once no write is in flight (including a due batch started by the last one). */
  private async writesEnded(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async write(batch: Batch): Promise<void> {
    if (this.failure) return;
    const { warehouse } = this.options;
    await Promise.all([...batch.rows.values()].map((rows) => warehouse.writer.insert(rows)));
    const last = batch.last as RecordedEvent;
    this.totalEvents += batch.events;
    await writeCheckpoint(warehouse, this.options.name, last.position, this.totalEvents);
    this.durable = last.position;
    this.events += batch.events;
    this.rows += batch.rowCount;
    this.options.log?.debug(
      { events: batch.events, rows: batch.rowCount, position: formatPosition(last.position) },
      'projected batch written',
    );
  }

  private async flush(): Promise<void> {
    this.startWrite();
    await this.writesEnded();
    if (this.failure) throw this.failure;
  }
}

let lastMicros = 0;
/** Now with microseconds for a DateTime64(6) column, strictly increasing in this process (checkpoints never tie). */
function microsecondsNow(): string {
  const micros = Math.max(
    Math.round((performance.timeOrigin + performance.now()) * 1000),
    lastMicros + 1,
  );
  lastMicros = micros;
  return `${clickhouseTime(Math.trunc(micros / 1000)).slice(0, 19)}.${String(micros % 1_000_000).padStart(6, '0')}`;
}

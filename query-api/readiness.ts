import type { EventReader } from '../eventstore/event-store.js';
import type { LagReporter } from '../eventstore/log-lag.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { ReadinessCheck } from './app.js';

/** How far behind the log the warehouse or the profiles may be before `/readyz` says not ready. */
export const READY_LAG_SECONDS = 60;

/**
 * What `/readyz` checks: the log answers, the warehouse answers, and the
 * resolver and the projector, where this process runs them, keep up.
 */
export async function readinessChecks(parts: {
  readonly eventStore: Pick<EventReader, 'headPosition'>;
  readonly warehouse?: Warehouse | undefined;
  readonly resolver?: LagReporter | undefined;
  readonly projector?: LagReporter | undefined;
}): Promise<ReadinessCheck[]> {
  const { eventStore, warehouse, resolver, projector } = parts;
  const check = async (name: string, run: () => Promise<string | undefined>) => {
    try {
      const problem = await run();
      return problem === undefined ? { name, ok: true } : { name, ok: false, detail: problem };
    } catch (error) {
      return { name, ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
  };
  return Promise.all([
    check('event_store', async () => {
      await eventStore.headPosition();
      return undefined;
    }),
    ...(warehouse
      ? [
          check('warehouse', async () => {
            await warehouse.client.query({ query: 'SELECT 1', format: 'JSONEachRow' });
            return undefined;
          }),
        ]
      : []),
    ...(resolver ? [check('identity_lag', () => behind(resolver, 'the profiles are'))] : []),
    ...(projector ? [check('projection_lag', () => behind(projector, 'the warehouse is'))] : []),
  ]);
}

async function behind(follower: LagReporter, what: string): Promise<string | undefined> {
  const { seconds } = await follower.lag();
  return seconds <= READY_LAG_SECONDS
    ? undefined
    : `${what} ${Math.round(seconds)} s behind the log (ready under ${READY_LAG_SECONDS} s)`;
}

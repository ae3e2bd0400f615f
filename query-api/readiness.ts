import type { EventReader } from '../eventstore/event-store.js';
import type { Projector } from '../projections/projector.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { ReadinessCheck } from './app.js';

/** How far behind the log the warehouse may be before `/readyz` says not ready. */
export const READY_LAG_SECONDS = 60;

/** What `/readyz` checks: the log answers, the warehouse answers, the projector (when this process runs it) keeps up. */
export async function readinessChecks(parts: {
  readonly eventStore: Pick<EventReader, 'headPosition'>;
  readonly warehouse?: Warehouse | undefined;
  readonly projector?: Pick<Projector, 'lag'> | undefined;
}): Promise<ReadinessCheck[]> {
  const { eventStore, warehouse, projector } = parts;
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
    ...(projector
      ? [
          check('projection_lag', async () => {
            const { seconds } = await projector.lag();
            return seconds <= READY_LAG_SECONDS
              ? undefined
              : `the warehouse is ${Math.round(seconds)} s behind the log (ready under ${READY_LAG_SECONDS} s)`;
          }),
        ]
      : []),
  ]);
}

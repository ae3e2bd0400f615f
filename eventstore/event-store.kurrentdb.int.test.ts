/**
 * Runs the event store contract against KurrentDB. The server comes from
 * TANDEM_TEST_KURRENTDB_URL when set, else from a container that testcontainers
 * starts when a container runtime exists; with neither, the suite is reported
 * skipped with the reason, never failed.
 */
import { afterAll, beforeAll } from 'vitest';
import { findServer, serverUrl } from '../testing/servers.js';
import { describeEventStoreContract } from './event-store.contract.js';

/** A pinned release, so a new KurrentDB version is a deliberate change here. */
const IMAGE = 'kurrentplatform/kurrentdb:26.0.2';
const PORT = 2113;
/** Pulling the image on a cold machine can take longer than the int tier's hook timeout. */
const CONTAINER_START_MS = 300_000;
const CONTAINER_READY_MS = 120_000;

const source = await findServer('TANDEM_TEST_KURRENTDB_URL', 'KurrentDB');
const server = serverUrl(source, startContainer);

if ('container' in source) {
  beforeAll(async () => {
    await server.url();
  }, CONTAINER_START_MS);
  afterAll(() => server.stop());
}

describeEventStoreContract(
  'kurrentdb',
  async () => ({
    spec: { kind: 'kurrentdb', connectionString: await server.url() },
    // Every contract test writes its own streams, so a shared server needs no cleaning.
    cleanup: async () => {},
  }),
  {
    skipReason: 'skipReason' in source ? source.skipReason : undefined,
    removalsLeaveAll: false,
    largeEventBytes: 512 * 1024,
  },
);

async function startContainer() {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(IMAGE)
    .withEnvironment({
      KURRENTDB_CLUSTER_SIZE: '1',
      KURRENTDB_INSECURE: 'true',
      // Off is the default, pinned here: system projections write `$` events after every append.
      KURRENTDB_RUN_PROJECTIONS: 'None',
      KURRENTDB_MEM_DB: 'true',
    })
    .withExposedPorts(PORT)
    // The probe the official image's own HEALTHCHECK uses; it answers 204 when the node is up.
    .withWaitStrategy(Wait.forHttp('/health/live', PORT).forStatusCode(204))
    .withStartupTimeout(CONTAINER_READY_MS)
    .start();
  return {
    url: `kurrentdb://${container.getHost()}:${container.getMappedPort(PORT)}?tls=false`,
    stop: () => container.stop(),
  };
}

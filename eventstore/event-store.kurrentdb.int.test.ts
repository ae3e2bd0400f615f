/**
 * Runs the event store contract against KurrentDB. The server comes from
 * TANDEM_TEST_KURRENTDB_URL when set, else from a container that testcontainers
 * starts when a container runtime exists; with neither, the suite is reported
 * skipped with the reason, never failed.
 */
import { afterAll, beforeAll } from 'vitest';
import { describeEventStoreContract } from './event-store.contract.js';

/** A pinned release, so a new KurrentDB version is a deliberate change here. */
const IMAGE = 'kurrentplatform/kurrentdb:26.0.2';
const PORT = 2113;
/** Finding the runtime is a local socket call; a hung socket must not stall the whole run. */
const RUNTIME_PROBE_MS = 5_000;
/** Pulling the image on a cold machine can take longer than the int tier's hook timeout. */
const CONTAINER_START_MS = 300_000;
const CONTAINER_READY_MS = 120_000;

type Source =
  | { readonly url: string }
  | { readonly container: true }
  | { readonly skipReason: string };

const source = await findKurrentDb();
let connectionString: Promise<string> | undefined;
let stopContainer: (() => Promise<unknown>) | undefined;

if ('container' in source) {
  beforeAll(async () => {
    await serverUrl();
  }, CONTAINER_START_MS);
  afterAll(async () => {
    await stopContainer?.();
  });
}

describeEventStoreContract(
  'kurrentdb',
  async () => ({
    spec: { kind: 'kurrentdb', connectionString: await serverUrl() },
    // Every contract test writes its own streams, so a shared server needs no cleaning.
    cleanup: async () => {},
  }),
  {
    skipReason: 'skipReason' in source ? source.skipReason : undefined,
    deleteRemovesFromAll: false,
    largeEventBytes: 512 * 1024,
  },
);

async function findKurrentDb(): Promise<Source> {
  const url = process.env.TANDEM_TEST_KURRENTDB_URL;
  if (url) return { url };
  // Loaded only here: runs against a given server never pay for testcontainers.
  const { getContainerRuntimeClient } = await import('testcontainers');
  try {
    await withTimeout(getContainerRuntimeClient(), RUNTIME_PROBE_MS);
    return { container: true };
  } catch (error) {
    const why = (error instanceof Error ? error.message : String(error))
      .split('\n')[0]
      ?.slice(0, 120);
    return {
      skipReason: `no KurrentDB: set TANDEM_TEST_KURRENTDB_URL or provide a container runtime (testcontainers found none: ${why})`,
    };
  }
}

/** The connection string of the server under test, starting the container on first use. */
function serverUrl(): Promise<string> {
  if ('url' in source) return Promise.resolve(source.url);
  connectionString ??= startContainer();
  return connectionString;
}

async function startContainer(): Promise<string> {
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
  stopContainer = () => container.stop();
  return `kurrentdb://${container.getHost()}:${container.getMappedPort(PORT)}?tls=false`;
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

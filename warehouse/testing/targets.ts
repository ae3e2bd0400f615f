/**
 * The ClickHouse deployments warehouse and projection tests run against:
 * chDB always (in a temp directory, one per test process, since chDB binds
 * one data directory per process), and a ClickHouse server when
 * TANDEM_TEST_CLICKHOUSE_URL is set or a container runtime exists. Each test
 * opens its own database, so tests never see each other's rows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { findServer, serverUrl } from '../../testing/servers.js';
import { openWarehouse, type Warehouse, type WarehouseTarget } from '../warehouse.js';

/** A pinned release, so a new ClickHouse version is a deliberate change here. */
const IMAGE = 'clickhouse/clickhouse-server:25.8';
const PORT = 8123;
const CONTAINER_READY_MS = 120_000;

export interface TargetUnderTest {
  readonly name: 'chdb' | 'server';
  /** Set when this target cannot run here; its tests are reported skipped with it. */
  readonly skipReason: string | undefined;
  /** A warehouse on a database of its own (not yet migrated). */
  open(): Promise<Warehouse>;
  /** Removes what the target made (temp directory, container). */
  dispose(): Promise<void>;
}

/** chDB, and the server when one can be found. */
export async function warehouseTargets(): Promise<TargetUnderTest[]> {
  return [chdbTarget(), await serverTarget()];
}

function chdbTarget(): TargetUnderTest {
  let dir: Promise<string> | undefined;
  return {
    name: 'chdb',
    skipReason: undefined,
    async open() {
      dir ??= mkdtemp(join(tmpdir(), 'tandem-chdb-'));
      return openWarehouse({
        target: { kind: 'chdb', path: await dir },
        database: freshDatabase(),
      });
    },
    async dispose() {
      if (dir) await rm(await dir, { recursive: true, force: true });
    },
  };
}

async function serverTarget(): Promise<TargetUnderTest> {
  const source = await findServer('TANDEM_TEST_CLICKHOUSE_URL', 'ClickHouse server');
  const server = serverUrl(source, startContainer);
  return {
    name: 'server',
    skipReason: 'skipReason' in source ? source.skipReason : undefined,
    async open() {
      const target: WarehouseTarget = { kind: 'server', url: await server.url() };
      return openWarehouse({ target, database: freshDatabase() });
    },
    dispose: () => server.stop(),
  };
}

function freshDatabase(): string {
  return `tandem_test_${randomBytes(6).toString('hex')}`;
}

async function startContainer() {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(IMAGE)
    .withEnvironment({ CLICKHOUSE_USER: 'tandem', CLICKHOUSE_PASSWORD: 'tandem' })
    .withExposedPorts(PORT)
    .withWaitStrategy(Wait.forHttp('/ping', PORT).forStatusCode(200))
    .withStartupTimeout(CONTAINER_READY_MS)
    .start();
  return {
    url: `http://tandem:tandem@${container.getHost()}:${container.getMappedPort(PORT)}`,
    stop: () => container.stop(),
  };
}

/**
 * Declares `body` once per target, as `title on <target>`; a target that
 * cannot run here is reported skipped with its reason.
 */
export function describeOnTargets(
  title: string,
  targets: readonly TargetUnderTest[],
  body: (target: TargetUnderTest) => void,
): void {
  for (const target of targets) {
    const name = `${title} on ${target.name}`;
    if (target.skipReason) {
      console.warn(`[${title}] ${target.name}: skipped — ${target.skipReason}`);
      describe.skip(`${name} (skipped: ${target.skipReason})`, () => {
        it('runs when its server is available', () => {});
      });
      continue;
    }
    describe(name, () => body(target));
  }
}

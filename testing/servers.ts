/**
 * Finding a server for the tests that need one (KurrentDB, ClickHouse): a URL
 * from the environment, else a container that testcontainers starts when a
 * container runtime exists. With neither, the caller reports its tests
 * skipped with the reason this returns, never failed.
 */

/** Finding the runtime is a local socket call; a hung socket must not stall the whole run. */
const RUNTIME_PROBE_MS = 5_000;

export type ServerSource =
  | { readonly url: string }
  | { readonly container: true }
  | { readonly skipReason: string };

/** Where the server named `what` comes from: `variable`, a container runtime, or nowhere (why). */
export async function findServer(variable: string, what: string): Promise<ServerSource> {
  const url = process.env[variable];
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
      skipReason: `no ${what}: set ${variable} or provide a container runtime (testcontainers found none: ${why})`,
    };
  }
}

/**
 * The server's URL: the given one, or a container started on first use by
 * `start` (which returns its URL and how to stop it). `stop()` stops a
 * started container and is harmless otherwise.
 */
export function serverUrl(
  source: ServerSource,
  start: () => Promise<{ url: string; stop: () => Promise<unknown> }>,
): { url(): Promise<string>; stop(): Promise<void> } {
  let started: Promise<{ url: string; stop: () => Promise<unknown> }> | undefined;
  return {
    url() {
      if ('url' in source) return Promise.resolve(source.url);
      if ('skipReason' in source) return Promise.reject(new Error(source.skipReason));
      started ??= start();
      return started.then((server) => server.url);
    },
    async stop() {
      await (await started)?.stop();
    },
  };
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

import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** Tandem's version from package.json, found from source (cli/) or build output (dist/cli/). */
export function packageVersion(): string {
  if (cached) return cached;
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === 'tandem' && manifest.version) {
        cached = manifest.version;
        return cached;
      }
    } catch {
      // not at this depth; try the next
    }
  }
  throw new Error('package.json of tandem not found beside cli/ or dist/cli/');
}

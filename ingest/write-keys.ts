import { createHash } from 'node:crypto';

/** What a write key stands for: the source its events come from. */
export interface WriteKeySource {
  readonly sourceId: string;
}

/** Looks up write keys. Keys are held only as SHA-256 digests, so a memory dump does not reveal them. */
export interface WriteKeys {
  resolve(key: string): WriteKeySource | undefined;
}

/** Write keys from configuration (the bootstrap key of a first start); key management adds event-sourced ones. */
export function staticWriteKeys(
  entries: readonly { readonly key: string; readonly sourceId: string }[],
): WriteKeys {
  const byDigest = new Map(
    entries.map((entry) => [digest(entry.key), { sourceId: entry.sourceId }]),
  );
  return { resolve: (key) => byDigest.get(digest(key)) };
}

function digest(key: string): string {
  return createHash('sha256').update(key).digest('base64url');
}

import { InvalidArgumentError } from 'commander';

/** A commander parser for a comma-separated list drawn from `allowed`, e.g. `--parts ingest,api`. */
export function commaList<T extends string>(
  option: string,
  allowed: readonly T[],
): (text: string) => T[] {
  return (text) => {
    const names = text.split(',').map((name) => name.trim());
    const unknown = names.filter((name) => !(allowed as readonly string[]).includes(name));
    if (unknown.length > 0 || names.length === 0)
      throw new InvalidArgumentError(
        `${option} takes ${allowed.join(', ')} (comma-separated), got "${text}"`,
      );
    return names as T[];
  };
}

/** A commander parser for a non-negative integer option, e.g. `--shoppers 1000`. */
export function integer(flag: string): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 0)
      throw new InvalidArgumentError(`${flag} must be a non-negative integer, got "${text}"`);
    return value;
  };
}

import { z } from 'zod';

/** Kinds of personal data; ingest seals every field marked with one (invariant 4). */
export const PII_KINDS = [
  'email',
  'phone',
  'name',
  'address',
  'ip',
  'geo',
  'free_text',
  'birthday',
] as const;
export type PiiKind = (typeof PII_KINDS)[number];

/** Marks a schema as personal data of a kind; read back with `piiKindOf`. */
export function pii<T extends z.ZodType>(schema: T, kind: PiiKind): T {
  return schema.meta({ pii: kind }) as T;
}

/** The PII kind a schema was marked with, if any, looking through optional, nullable and default wrappers. */
export function piiKindOf(schema: z.ZodType): PiiKind | undefined {
  let current: unknown = schema;
  while (current instanceof z.ZodType) {
    const meta = current.meta() as { pii?: PiiKind } | undefined;
    if (meta?.pii) return meta.pii;
    const wrapper = current as { unwrap?: () => unknown };
    current = typeof wrapper.unwrap === 'function' ? wrapper.unwrap() : undefined;
  }
  return undefined;
}

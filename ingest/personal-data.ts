/**
 * Finds personal data in free-form objects (Segment properties and traits)
 * so it can be sealed: fields whose name says they are personal, and any
 * string that looks like an email address, wherever it is.
 */
const PERSONAL_KEYS = new Set([
  'email',
  'phone',
  'mobile',
  'memberid',
  'member_id',
  'name',
  'firstname',
  'lastname',
  'first_name',
  'last_name',
  'fullname',
  'full_name',
  'username',
  'address',
  'street',
  'postalcode',
  'postal_code',
  'zip',
  'birthday',
  'ip',
  'latitude',
  'longitude',
]);
const EMAIL_LIKE = /[^\s@]+@[^\s@]+\.[^\s@]+/;

export interface Split {
  /** The object without its personal fields. */
  readonly clean: Record<string, unknown> | undefined;
  /** The personal fields, by their path from the object's root ("traits.address.street"). */
  readonly personal: Record<string, unknown>;
}

/**
 * What marks a field as personal by its name: in traits, every personal key
 * (a trait called `name` is the person's); in properties, all but `name` (a
 * product's name is not personal); in context, none (only email-like values).
 */
export type KeyRule = 'traits' | 'properties' | 'context';

const KEYS: Record<KeyRule, ReadonlySet<string>> = {
  traits: PERSONAL_KEYS,
  properties: new Set([...PERSONAL_KEYS].filter((key) => key !== 'name')),
  context: new Set(),
};

/** Splits `value` into what may be stored as is and what must be sealed. */
export function splitPersonalData(
  value: Record<string, unknown> | undefined,
  prefix: string,
  rule: KeyRule,
): Split {
  const personal: Record<string, unknown> = {};
  const clean = value === undefined ? undefined : walk(value, prefix, personal, KEYS[rule]);
  return { clean, personal };
}

function walk(
  value: Record<string, unknown>,
  prefix: string,
  personal: Record<string, unknown>,
  keys: ReadonlySet<string>,
): Record<string, unknown> {
  const clean: Record<string, unknown> = {};
  for (const key in value) {
    const field = value[key];
    // Paths are built only for what is moved or descended into: most fields are plain values kept as they are.
    if (keys.has(key.toLowerCase())) personal[`${prefix}.${key}`] = field;
    else if (field === null || (typeof field !== 'object' && !mayBeEmail(field)))
      clean[key] = field;
    else {
      const kept = scrub(field, `${prefix}.${key}`, personal, keys);
      if (kept !== REMOVED) clean[key] = kept;
    }
  }
  return clean;
}

const REMOVED = Symbol('removed');

function mayBeEmail(field: unknown): boolean {
  return typeof field === 'string' && field.includes('@') && EMAIL_LIKE.test(field);
}

/** The value with personal parts moved out; a string that is itself personal becomes REMOVED (null inside arrays). */
function scrub(
  field: unknown,
  path: string,
  personal: Record<string, unknown>,
  keys: ReadonlySet<string>,
): unknown {
  if (mayBeEmail(field)) {
    personal[path] = field;
    return REMOVED;
  }
  if (Array.isArray(field)) {
    return field.map((item, i) => {
      const kept = scrub(item, `${path}.${i}`, personal, keys);
      return kept === REMOVED ? null : kept;
    });
  }
  if (field !== null && typeof field === 'object')
    return walk(field as Record<string, unknown>, path, personal, keys);
  return field;
}

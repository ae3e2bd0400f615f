/**
 * Comparisons on JSON values: profile traits (stored as JSON text) and event
 * properties (a JSON object per event). One meaning for both:
 *
 * - a string compares with JSON strings only (byte order for `<`, `>`),
 *   a number with JSON numbers only, a boolean with JSON booleans only;
 * - `exists`: the key is there and not `null`; `not_exists` is its negation;
 * - `in`: equal to one of the listed strings or numbers;
 * - `contains`: a JSON string holding the value as a substring;
 * - `!=` is the negation of `=`: a missing value is "not equal".
 *
 * Keys (trait names, property paths) are parameters like any user value.
 */
import type { ComparisonOp } from '../../schemas/segment-definition.js';
import type { SqlParams } from './compile-context.js';

/** A JSON comparison as the schema carries it. */
export interface JsonComparison {
  readonly op: ComparisonOp;
  readonly value?: string | number | boolean | (string | number)[] | undefined;
}

/**
 * The positive predicate of `comparison` on the JSON `args` point at (a
 * column, then the path keys), and whether the condition is its negation
 * (`!=`, `not_exists`): callers negate as suits them (`NOT IN` for profiles).
 */
export function jsonPredicate(
  params: SqlParams,
  args: string,
  comparison: JsonComparison,
): { readonly sql: string; readonly negated: boolean } {
  const { op, value } = comparison;
  switch (op) {
    case 'exists':
    case 'not_exists':
      return { sql: `(JSONType(${args}) != 'Null')`, negated: op === 'not_exists' };
    case '!=':
      return { sql: compare(params, args, '=', value), negated: true };
    case 'in': {
      const list = Array.isArray(value) ? value : [];
      const strings = list.filter((item): item is string => typeof item === 'string');
      const numbers = list.filter((item): item is number => typeof item === 'number');
      const branches = [
        ...(strings.length > 0
          ? [`(${isString(args)} AND ${text(args)} IN ${params.add(strings, 'Array(String)')})`]
          : []),
        ...(numbers.length > 0
          ? [`(${isNumber(args)} AND ${num(args)} IN ${params.add(numbers, 'Array(Float64)')})`]
          : []),
      ];
      return {
        sql: branches.length === 0 ? 'false' : `(${branches.join(' OR ')})`,
        negated: false,
      };
    }
    case 'contains':
      return {
        sql: `(${isString(args)} AND position(${text(args)}, ${params.add(String(value), 'String')}) > 0)`,
        negated: false,
      };
    default:
      return { sql: compare(params, args, op, value), negated: false };
  }
}

function compare(
  params: SqlParams,
  args: string,
  op: '=' | '<' | '<=' | '>' | '>=',
  value: JsonComparison['value'],
): string {
  if (typeof value === 'string')
    return `(${isString(args)} AND ${text(args)} ${op} ${params.add(value, 'String')})`;
  if (typeof value === 'number')
    return `(${isNumber(args)} AND ${num(args)} ${op} ${params.add(value, 'Float64')})`;
  if (typeof value === 'boolean')
    return `(JSONType(${args}) = 'Bool' AND JSONExtractBool(${args}) ${op} ${params.add(value ? 1 : 0, 'UInt8')})`;
  // The schema refuses a comparison without a value; nothing matches one.
  return 'false';
}

const isString = (args: string) => `JSONType(${args}) = 'String'`;
const isNumber = (args: string) => `JSONType(${args}) IN ('Int64', 'UInt64', 'Double')`;
const text = (args: string) => `JSONExtractString(${args})`;
const num = (args: string) => `JSONExtractFloat(${args})`;

/**
 * A person in ClickHouse: finding them (for access and suppression requests,
 * which leave the identity graph alone), counting their rows, and deleting
 * them from every table (erasure).
 *
 * Which rows are a person's follows from the columns: `identifier_hash` (their
 * events, orders, identity rows), `identifiers` (`type:hash` of every
 * identifier an event came with) and `profile_id` (profiles, traits, consent,
 * segment membership and its history, the profiles a recommendation model
 * learned from). A table without these columns holds no one's data.
 *
 * Deletion is a mutation (`ALTER TABLE … DELETE`), which rewrites the parts
 * holding the rows; ClickHouse removes the replaced parts from disk in the
 * background (within about a minute on chDB). A mutation's text is kept on
 * disk, so the hashes are never in it: they are put in the Memory table
 * `privacy_erasure_targets` (never written to disk) and the mutation reads
 * them from there.
 */

import type { Identifier } from '../schemas/identifier.js';
import { RECOMMENDATION_TABLES } from '../warehouse/recommendation-tables.js';
import { selectRows } from '../warehouse/select.js';
import type { TableSpec } from '../warehouse/tables.js';
import { onCluster, PROJECTED_TABLES, SEGMENT_TABLES } from '../warehouse/tables.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { Person } from './person.js';

/** Where an erasure puts what it deletes by: a Memory table, so it never reaches a disk. */
export const ERASURE_TARGETS = 'privacy_erasure_targets';

/** The tables that can hold a person's rows, each with the predicate that finds them. */
export function personTables(): { spec: TableSpec; where: string }[] {
  const tables = [...PROJECTED_TABLES, ...SEGMENT_TABLES, ...RECOMMENDATION_TABLES];
  return tables.flatMap((spec) => {
    const has = (name: string) => spec.columns.some((column) => column.name === name);
    const clauses = [
      ...(has('identifier_hash')
        ? [
            "identifier_hash IN (SELECT value FROM {t} WHERE kind = 'hash' AND request = {request:String})",
          ]
        : []),
      ...(has('identifiers')
        ? [
            "hasAny(identifiers, (SELECT groupArray(value) FROM {t} WHERE kind = 'identifier' AND request = {request:String}))",
          ]
        : []),
      ...(has('profile_id')
        ? [
            "profile_id IN (SELECT value FROM {t} WHERE kind = 'profile' AND request = {request:String})",
          ]
        : []),
    ];
    return clauses.length > 0 ? [{ spec, where: clauses.join(' OR ') }] : [];
  });
}

/** The profile holding `identifier` now, or undefined. */
export async function profileHolding(
  warehouse: Warehouse,
  identifier: Identifier,
): Promise<string | undefined> {
  const [row] = await selectRows<{ profile_id: string }>(
    warehouse.client,
    `SELECT profile_id FROM ${warehouse.table('identity')}
     WHERE identifier_hash = {hash:String} AND identifier_type = {type:String}`,
    { hash: identifier.hash, type: identifier.type },
  );
  return row?.profile_id;
}

/** The person of a profile as the warehouse knows them: it, the profiles merged into it, their identifiers. */
export async function personOfProfile(
  warehouse: Warehouse,
  profileId: string,
): Promise<Person | undefined> {
  const profiles = [profileId];
  // Merges chain (A into B, B into C): follow them until no profile is new.
  for (let frontier = [profileId]; frontier.length > 0; ) {
    const absorbed = await selectRows<{ profile_id: string }>(
      warehouse.client,
      `SELECT profile_id FROM ${warehouse.table('profiles')} WHERE merged_into IN {ids:Array(String)}`,
      { ids: frontier },
    );
    frontier = absorbed.map((row) => row.profile_id).filter((id) => !profiles.includes(id));
    profiles.push(...frontier);
  }
  const identifiers = await selectRows<{ identifier_type: string; identifier_hash: string }>(
    warehouse.client,
    `SELECT identifier_type, identifier_hash FROM ${warehouse.table('identity')}
     WHERE profile_id IN {ids:Array(String)} ORDER BY identifier_type, identifier_hash`,
    { ids: profiles },
  );
  const [known] = await selectRows<{ n: number }>(
    warehouse.client,
    `SELECT count() AS n FROM ${warehouse.table('profiles')} WHERE profile_id = {id:String}`,
    { id: profileId },
  );
  if (!known?.n && identifiers.length === 0) return undefined;
  return {
    profileIds: profiles,
    identifiers: identifiers.map((row) => ({
      type: row.identifier_type,
      hash: row.identifier_hash,
    })),
  };
}

/**
 * Puts the person in the targets table under `request` (again after a
 * restart: Memory tables do not survive one), runs `work`, then clears them.
 */
async function withTargets<T>(
  warehouse: Warehouse,
  request: string,
  person: Person,
  work: (params: Record<string, unknown>) => Promise<T>,
): Promise<T> {
  const rows = [
    ...person.identifiers.map((identifier) => ({ request, kind: 'hash', value: identifier.hash })),
    ...person.identifiers.map((identifier) => ({
      request,
      kind: 'identifier',
      value: `${identifier.type}:${identifier.hash}`,
    })),
    ...person.profileIds.map((profileId) => ({ request, kind: 'profile', value: profileId })),
  ];
  const targets = warehouse.table(ERASURE_TARGETS);
  await warehouse.client.insert({ table: targets, values: rows, format: 'JSONEachRow' });
  try {
    return await work({ request });
  } finally {
    await warehouse.client.command({
      query: `ALTER TABLE ${targets} DELETE WHERE request = {request:String}`,
      query_params: { request },
    });
  }
}

/** Rows of the person in each table (tables with none included, as 0). */
export function countPersonRows(
  warehouse: Warehouse,
  request: string,
  person: Person,
): Promise<Record<string, number>> {
  return withTargets(warehouse, request, person, async (params) => {
    const counts: Record<string, number> = {};
    for (const { spec, where } of personTables())
      counts[spec.name] = await countWhere(warehouse, spec.name, bind(warehouse, where), params);
    return counts;
  });
}

/**
 * Deletes the person's rows from every table that has any, and waits for
 * the mutations to finish. Returns the rows each table held (every version
 * of a row counts, as they are all removed).
 */
export function deletePersonRows(
  warehouse: Warehouse,
  request: string,
  person: Person,
): Promise<Record<string, number>> {
  return withTargets(warehouse, request, person, async (params) => {
    const removed: Record<string, number> = {};
    for (const { spec, where } of personTables())
      removed[spec.name] = await deleteRowsWhere(
        warehouse,
        spec.name,
        bind(warehouse, where),
        params,
      );
    return removed;
  });
}

/**
 * Deletes the rows of `table` matching `predicate` (a mutation, waited for)
 * and returns how many there were; no mutation when there are none.
 */
export async function deleteRowsWhere(
  warehouse: Warehouse,
  table: string,
  predicate: string,
  params: Record<string, unknown>,
): Promise<number> {
  const rows = await countWhere(warehouse, table, predicate, params);
  if (rows > 0)
    await warehouse.client.command({
      query: `ALTER TABLE ${warehouse.table(table)}${onCluster(warehouse)} DELETE WHERE ${predicate}
              SETTINGS mutations_sync = 2`,
      query_params: params,
    });
  return rows;
}

/** Rows matching `predicate`, every stored version counted (no FINAL). */
async function countWhere(
  warehouse: Warehouse,
  table: string,
  predicate: string,
  params: Record<string, unknown>,
): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    warehouse.client,
    `SELECT count() AS n FROM ${warehouse.table(table)} WHERE ${predicate} SETTINGS final = 0`,
    params,
  );
  return row?.n ?? 0;
}

function bind(warehouse: Warehouse, where: string): string {
  return where.replaceAll('{t}', warehouse.table(ERASURE_TARGETS));
}

/** `counts` with each name prefixed, for a report naming where they were counted (`clickhouse.events`). */
export function prefixKeys(prefix: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([key, count]) => [prefix + key, count]));
}

/**
 * The identifiers a profile holds now, read without `final`: the newest
 * `identity` row of each identifier decides (`argMax` by `seq`), so a
 * merge, split or forgotten identifier counts at once even before
 * ClickHouse merges the parts, and reading the few rows of one profile
 * costs no FINAL over the table. Measured on 2M events: a profile's read
 * went from 114 ms to about 40 ms with this and the same approach for its
 * other rows.
 */

/**
 * A SELECT of `identifier_hash` and `identifier_type` for each identifier
 * the profile `{id:String}` holds now. `identity` is the table's qualified
 * name; the caller binds `id`.
 */
export function heldIdentifiersSql(identity: string): string {
  return `SELECT identifier_hash, argMax(identifier_type, seq) AS identifier_type
          FROM ${identity}
          WHERE identifier_hash IN (SELECT identifier_hash FROM ${identity} WHERE profile_id = {id:String})
          GROUP BY identifier_hash
          HAVING argMax(profile_id, seq) = {id:String} AND NOT argMax(is_deleted, seq)`;
}

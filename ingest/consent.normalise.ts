/**
 * Consent statements from consent-management platforms → pending facts.
 * The identifier becomes a keyed hash (the fact's subject and only
 * identifier); the purposes travel in the shape a till's sign-up carries
 * them (`data.consent.purposes`), so identity reads both alike.
 *
 * The identifier's value (normalised, under its type's name: `email`,
 * `phone`) and the platform's statement id are sealed; the
 * purposes and the platform's label (`onetrust`) stay readable.
 *
 * The event id is what makes a retry land once: the platform's statement id
 * when it sends one, else the statement's content and time. A statement with
 * neither an id nor a time is stamped with when it was received, so a retry
 * of it is stored again — harmless, since a repeated statement changes no
 * consent, and never wrong, as deduplicating by content alone would be (a
 * grant, a withdrawal, then the same grant again is three statements).
 */
import {
  type IdentifierHasher,
  type NormaliseOptions,
  normaliseIdentifier,
} from '../privacy/identifiers.js';
import { CONSENT_STATED, type ConsentStatement } from '../schemas/consent.js';
import type { Source } from '../schemas/envelope.js';
import type { FieldIssue } from '../schemas/errors.js';
import { eventIdFor, identifierCollector, type PendingFact } from './fact.js';

export interface ConsentContext {
  readonly receivedAt: number;
  /** The sending platform (the write key's source). */
  readonly sourceId: string;
  readonly hasher: IdentifierHasher;
  readonly normalise: NormaliseOptions;
  /** The purposes this deployment asks consent for; a statement may name no other. */
  readonly purposes: readonly string[];
}

export type NormalisedConsent =
  | { readonly ok: true; readonly fact: PendingFact }
  | { readonly ok: false; readonly issues: readonly FieldIssue[] };

/** Types a statement cannot name: `profile:` is Tandem's own id, no identifier a platform holds. */
const NOT_IDENTIFIERS = new Set(['profile']);

/** One statement as a pending fact, or what is wrong with it (paths relative to the statement). */
export function normaliseConsent(
  statement: ConsentStatement,
  context: ConsentContext,
): NormalisedConsent {
  const issues: FieldIssue[] = [];
  const colon = statement.identifier.indexOf(':');
  const type = statement.identifier.slice(0, colon);
  const raw = statement.identifier.slice(colon + 1);
  const normalised = NOT_IDENTIFIERS.has(type)
    ? {
        ok: false as const,
        reason: `is not an identifier a statement can name (use email:, phone:, user_id:, member_id:…)`,
      }
    : normaliseIdentifier(type, raw, context.normalise);
  if (!normalised.ok)
    issues.push({ path: 'identifier', message: `the ${type} value ${normalised.reason}` });
  for (const purpose of Object.keys(statement.purposes))
    if (!context.purposes.includes(purpose))
      issues.push({
        path: `purposes.${purpose}`,
        message: `unknown purpose "${purpose}"; this deployment takes ${context.purposes.join(', ')} (TANDEM_CONSENT_PURPOSES)`,
      });
  if (!normalised.ok || issues.length > 0) return { ok: false, issues };

  const identifiers = identifierCollector(context.hasher, context.normalise);
  const subject = identifiers.add(type, raw);
  if (!subject) throw new Error(`unreachable: ${type} normalised once, then not`);
  const source: Source = { kind: 'cmp', id: context.sourceId };
  const occurredAt = new Date(
    statement.occurredAt === undefined ? context.receivedAt : Date.parse(statement.occurredAt),
  ).toISOString();
  const purposes = Object.fromEntries(
    Object.entries(statement.purposes).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  // Namespaced by the identifier: a platform's ids may be unique per person only.
  const senderId =
    statement.statementId === undefined
      ? [
          'content',
          subject.type,
          subject.hash,
          JSON.stringify(purposes),
          statement.source ?? '',
          occurredAt,
        ]
      : ['statement', subject.type, subject.hash, statement.statementId];
  return {
    ok: true,
    fact: {
      envelope: {
        id: eventIdFor(source, senderId.join('\u0000')),
        type: CONSENT_STATED,
        v: 1,
        source,
        occurredAt,
        receivedAt: new Date(context.receivedAt).toISOString(),
        identifiers: identifiers.all,
        data: {
          consent: {
            purposes,
            ...(statement.source === undefined ? {} : { source: statement.source }),
          },
        },
      },
      // The value under its type's name (`email`), where a contact export looks for it; the
      // platform's id too, since it is free text and nothing vouches that it names no one.
      pii: {
        [type]: normalised.value,
        ...(statement.statementId === undefined ? {} : { statementId: statement.statementId }),
      },
      subject,
    },
  };
}

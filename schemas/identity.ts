/**
 * Identity: the rules that decide what may be linked, the events the
 * resolver appends to explain every decision, and the commands operators
 * send it. Profiles are event-sourced: a profile's state is a fold of the
 * events in its stream (`profile-<id>`).
 */
import { z } from 'zod';
import { Identifier, IdentifierType } from './identifier.js';

// ---------------------------------------------------------------------------
// Rules

/** Identifier types that say who a person is; the others (devices, cookies) only say which browser. */
const DEFAULT_STRENGTH = {
  user_id: 'strong',
  member_id: 'strong',
  email: 'strong',
  phone: 'strong',
  payment_token: 'strong',
  anonymous_id: 'weak',
} as const;

/**
 * The resolver's rules, with documented defaults (docs/identity.md). One
 * JSON file (`TANDEM_IDENTITY_RULES`) overrides any part of them.
 */
export const IdentityRules = z.strictObject({
  /**
   * Identifier types from most to least telling. A fact is attributed to the
   * profile of its highest-priority identifier; a new identifier joins that profile.
   */
  priority: z
    .array(IdentifierType)
    .min(1)
    .default(['user_id', 'member_id', 'email', 'phone', 'payment_token', 'anonymous_id']),
  /** `strong` types identify a person; `weak` ones (devices) are evidence only through a strong one. */
  strength: z.record(IdentifierType, z.enum(['strong', 'weak'])).default({ ...DEFAULT_STRENGTH }),
  /** The most values of a type one profile may hold; a link that would exceed it is refused. */
  maxPerProfile: z.record(IdentifierType, z.int().min(1)).default({
    user_id: 1,
    member_id: 1,
    email: 3,
    phone: 3,
    payment_token: 8,
    anonymous_id: 100,
  }),
  /**
   * Values that never link, whatever their type, compared after normalisation
   * (placeholders that forms, tills and test scripts send).
   */
  neverLink: z
    .array(z.string())
    .default([
      'null',
      'undefined',
      'none',
      'nil',
      'n/a',
      'na',
      '0',
      '-',
      'guest',
      'anonymous',
      'unknown',
      'test',
      'test@test.com',
      'test@example.com',
      'guest@example.com',
      'noreply@example.com',
    ]),
  /** Per type: values that never link (e.g. the anonymous ids of known demo devices). */
  neverLinkValues: z.record(IdentifierType, z.array(z.string())).default({}),
  /** Per type: patterns (regular expressions over the normalised value) that never link. */
  neverLinkPatterns: z
    .record(
      IdentifierType,
      z.array(
        z.string().refine((source) => {
          try {
            new RegExp(source);
            return true;
          } catch {
            return false;
          }
        }, 'must be a valid regular expression'),
      ),
    )
    .default({
      // Every digit the same after the country code: +86 11111111111, +1 0000000000.
      phone: ['^\\+\\d{1,3}?(\\d)\\1{6,}$'],
      email: ['^(test|noreply|no-reply|donotreply)@'],
    }),
  /**
   * A weak identifier (a device) that brought more than this many new strong
   * identifiers its profile could not take — guest emails typed on a store's
   * demo device — is shared, and stops linking.
   */
  sharedAfterStrong: z.int().min(1).default(3),
  /**
   * A weak identifier caught bridging this many people (a link or merge refused
   * because it would have joined two identified profiles) is shared too.
   */
  sharedAfterConflicts: z.int().min(1).default(1),
});
export type IdentityRules = z.infer<typeof IdentityRules>;

/** The defaults, as a value. */
export const DEFAULT_IDENTITY_RULES: IdentityRules = IdentityRules.parse({});

/**
 * The rules' never-link test over a normalised value, for ingest (which sees
 * values before they are hashed): a listed placeholder, a listed value of the
 * type, or a match of one of the type's patterns.
 */
export function neverLinkTest(rules: IdentityRules): (type: string, value: string) => boolean {
  const anyType = new Set(rules.neverLink.map((value) => value.toLowerCase()));
  const byType = new Map(
    Object.entries(rules.neverLinkValues).map(([type, values]) => [type, new Set(values)]),
  );
  const patterns = new Map(
    Object.entries(rules.neverLinkPatterns).map(([type, sources]) => [
      type,
      sources.map((source) => new RegExp(source, 'i')),
    ]),
  );
  return (type, value) =>
    anyType.has(value.toLowerCase()) ||
    byType.get(type)?.has(value) === true ||
    patterns.get(type)?.some((pattern) => pattern.test(value)) === true;
}

// ---------------------------------------------------------------------------
// Identity events (appended by the resolver to `profile-<id>` streams)

/** The fact that caused a decision: its event id and its position in the log (`C/P`). */
export const Evidence = z.strictObject({
  eventId: z.uuid(),
  position: z.string().regex(/^\d+\/\d+$/),
});
export type Evidence = z.infer<typeof Evidence>;

export const ProfileId = z.string().regex(/^prf_[0-9a-z]+$/);
export type ProfileId = z.infer<typeof ProfileId>;

/** Why a link or merge was refused, or why an identifier stopped linking. */
export const RuleName = z.enum([
  'limit',
  'weak_bridge',
  'never_link',
  'shared_identifier',
  'kept_apart',
]);
export type RuleName = z.infer<typeof RuleName>;

const base = {
  profileId: ProfileId,
  /** The resolver's decision counter: orders decisions across profiles (a merge or split supersedes older mappings). */
  seq: z.int().min(0),
  evidence: Evidence,
};

export const IdentityEventTypes = {
  created: 'identity.profile_created',
  linked: 'identity.identifiers_linked',
  merged: 'identity.profiles_merged',
  absorbed: 'identity.profile_absorbed',
  refused: 'identity.link_refused',
  shared: 'identity.identifier_shared',
  ignored: 'identity.identifier_ignored',
  split: 'identity.profile_split',
  forgotten: 'identity.identifier_forgotten',
  consent: 'identity.consent_changed',
  traits: 'identity.traits_changed',
} as const;

export const ProfileCreated = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.created),
  identifiers: z.array(Identifier),
  /** `first_seen`: new identifiers; `split`: a part of a split profile; `refused`: identifiers a refusal kept apart; `shared`: a device detached as shared. */
  reason: z.enum(['first_seen', 'split', 'refused', 'shared']),
  /** The profile this one was split or kept apart from. */
  from: ProfileId.optional(),
});

export const IdentifiersLinked = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.linked),
  identifiers: z.array(Identifier).min(1),
  /** The identifier already in the profile that the fact showed together with the new ones. */
  via: Identifier,
});

export const ProfilesMerged = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.merged),
  /** The younger profile, now part of `profileId` (the older one, which keeps its id). */
  absorbed: ProfileId,
  /** Every identifier that moved. */
  identifiers: z.array(Identifier),
  /** The identifiers of both profiles the fact showed together. */
  bridge: z.tuple([Identifier, Identifier]),
});

export const ProfileAbsorbed = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.absorbed),
  into: ProfileId,
});

export const LinkRefused = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.refused),
  rule: RuleName,
  /** What the rule says, in words: "a profile holds at most 1 user_id". */
  detail: z.string(),
  /** The identifiers that were not joined to the profile. */
  identifiers: z.array(Identifier).min(1),
  /** The other profile, when a merge was refused. */
  otherProfileId: ProfileId.optional(),
});

export const IdentifierShared = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.shared),
  identifier: Identifier,
  rule: RuleName,
  detail: z.string(),
  /** The profile the shared identifier now has to itself. */
  sharedProfileId: ProfileId,
});

/** Appended to `identity-ignored`: a placeholder value belongs to no profile. */
export const IdentifierIgnored = z.strictObject({
  seq: base.seq,
  evidence: base.evidence,
  type: z.literal(IdentityEventTypes.ignored),
  identifier: Identifier,
  rule: z.literal('never_link'),
});

/**
 * Parts of a profile leave it, each a new profile: an operator said two of its
 * identifiers are different people (`apart`, kept apart from then on), or a
 * shared identifier was detached and the rest no longer hangs together. With
 * no parts, `apart` is only recorded (the two were not in one profile).
 */
export const ProfileSplit = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.split),
  parts: z.array(z.strictObject({ profileId: ProfileId, identifiers: z.array(Identifier) })),
  rule: z.enum(['operator', 'shared_identifier']),
  detail: z.string(),
  apart: z.tuple([Identifier, Identifier]).optional(),
});

export const IdentifierForgotten = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.forgotten),
  identifier: Identifier,
});

/** Where a consent statement came from: the source kind of the fact that carried it (`cmp`: `POST /v1/consents`). */
export const ConsentSource = z.enum(['web', 'app', 'pos', 'import', 'cmp', 'system']);
export type ConsentSource = z.infer<typeof ConsentSource>;

export const ConsentChanged = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.consent),
  purposes: z.record(
    z.string(),
    z.strictObject({ granted: z.boolean(), at: z.iso.datetime(), source: ConsentSource }),
  ),
});

export const TraitsChanged = z.strictObject({
  ...base,
  type: z.literal(IdentityEventTypes.traits),
  /** Non-personal traits that changed, with their new values. */
  traits: z.record(z.string(), z.json()),
});

export const IdentityEvent = z.discriminatedUnion('type', [
  ProfileCreated,
  IdentifiersLinked,
  ProfilesMerged,
  ProfileAbsorbed,
  LinkRefused,
  IdentifierShared,
  IdentifierIgnored,
  ProfileSplit,
  IdentifierForgotten,
  ConsentChanged,
  TraitsChanged,
]);
export type IdentityEvent = z.infer<typeof IdentityEvent>;
export type IdentityEventOf<T extends IdentityEvent['type']> = Extract<IdentityEvent, { type: T }>;

/** The stream holding a profile's events. */
export function profileStream(profileId: string): string {
  return `profile-${profileId}`;
}

export const PROFILE_STREAM_PREFIX = 'profile-';

/** Where decisions about identifiers that belong to no profile go. */
export const IGNORED_IDENTIFIERS_STREAM = 'identity-ignored';

// ---------------------------------------------------------------------------
// Commands (appended by operators to `identity-commands`, processed in log order)

export const IDENTITY_COMMANDS_STREAM = 'identity-commands';

export const IdentityCommandTypes = {
  unlink: 'identity.unlink_requested',
  forget: 'identity.forget_requested',
  erase: 'identity.erasure_requested',
} as const;

/** Two identifiers an operator says are different people: split them apart, keep them apart. */
export const UnlinkRequested = z.strictObject({
  identifiers: z.tuple([Identifier, Identifier]),
  reason: z.string().min(1).max(500),
  /** Who asked (a key id or an operator name; no personal data). */
  requestedBy: z.string().min(1).max(200),
});
export type UnlinkRequested = z.infer<typeof UnlinkRequested>;

/** An identifier to remove from the graph (erasure). */
export const ForgetRequested = z.strictObject({
  identifier: Identifier,
  requestedBy: z.string().min(1).max(200),
});
export type ForgetRequested = z.infer<typeof ForgetRequested>;

/**
 * Erasures talk to the resolver in a stream of their own, deleted when the
 * erasure completes, so the identifier hashes they carry leave the log with
 * the person's data (`identity-commands` is never deleted).
 */
export const ERASURE_STREAM_PREFIX = 'identity-erasure-';

export function erasureStream(requestId: string): string {
  return `${ERASURE_STREAM_PREFIX}${requestId}`;
}

/** A person to erase from the graph: every identifier of the profile holding `identifier` is forgotten. */
export const ErasureRequested = z.strictObject({
  identifier: Identifier,
  requestId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  requestedBy: z.string().min(1).max(200),
});
export type ErasureRequested = z.infer<typeof ErasureRequested>;

/**
 * The resolver's answer to an erasure, appended once its decisions and a
 * snapshot of the graph without the person are durable: the profiles (the
 * survivor first, then those it absorbed) and the identifiers it forgot.
 * No profile held the identifier: no profiles, the identifier alone.
 */
export const ERASURE_RESOLVED = 'identity.erasure_resolved';
export const ErasureResolved = z.strictObject({
  requestId: z.string(),
  profileIds: z.array(ProfileId),
  identifiers: z.array(Identifier),
});
export type ErasureResolved = z.infer<typeof ErasureResolved>;

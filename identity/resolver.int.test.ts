import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore, RecordedEvent } from '../eventstore/event-store.js';
import { collect } from '../eventstore/testing/helpers.js';
import { aBatch, aShopper } from '../fixtures/builders.js';
import type { Ingestor } from '../ingest/ingestor.js';
import { ingestSample, openSampleLog, type SampleLog } from '../ingest/testing/sample-log.js';
import type { IdentifierHasher } from '../privacy/identifiers.js';
import {
  DEFAULT_IDENTITY_RULES,
  IdentityEventTypes as E,
  IdentityEvent,
  IGNORED_IDENTIFIERS_STREAM,
  PROFILE_STREAM_PREFIX,
} from '../schemas/identity.js';
import { SegmentBatch } from '../schemas/segment.js';
import { requestUnlink } from './commands.js';
import { describeDecision, profileHistory } from './explain.js';
import { IdentityGraph } from './graph.js';
import { openResolver } from './resolver.js';

/**
 * The resolver on a real log: the sample fixtures ingested through the real
 * pipeline into LMDB, then resolved, restarted, rebuilt.
 */
describe('identity resolver on the sample fixtures', () => {
  let sample: SampleLog;
  let dir: string;
  let eventStore: EventStore;
  let ingestor: Ingestor;
  let hasher: IdentifierHasher;
  const snapshotFile = () => join(dir, 'identity', 'graph.snapshot');

  beforeAll(async () => {
    sample = await openSampleLog('tandem-identity-');
    ({ dir, eventStore, ingestor, hasher } = sample);
    await ingestSample(ingestor);
  });
  afterAll(() => sample.close());

  const identityEvents = async (): Promise<RecordedEvent[]> =>
    collect(
      eventStore.readAll({
        filter: { streamPrefixes: [PROFILE_STREAM_PREFIX, IGNORED_IDENTIFIERS_STREAM] },
      }),
    );

  it('explains every profile from identity events alone: folding them rebuilds the live graph', async () => {
    const resolver = await openResolver({ eventStore, rules: DEFAULT_IDENTITY_RULES });
    const status = await resolver.catchUp();
    expect(status.facts).toBeGreaterThan(1000);
    expect(status.profiles).toBeGreaterThan(100);

    const decisions = (await identityEvents()).map((event) => IdentityEvent.parse(event.data));
    const folded = new IdentityGraph(DEFAULT_IDENTITY_RULES);
    for (const decision of decisions.sort((a, b) => a.seq - b.seq)) folded.apply(decision);
    expect(folded.digest()).toBe(resolver.graph.digest());
  });

  it('names, for every link and merge, a fact in the log that shows the identifiers it joined', async () => {
    const facts = new Map(
      (await collect(eventStore.readAll()))
        .filter((event) => !event.stream.startsWith(PROFILE_STREAM_PREFIX))
        .map((event) => [
          event.id,
          new Set(((event.data.identifiers ?? []) as { hash: string }[]).map((i) => i.hash)),
        ]),
    );
    let checked = 0;
    for (const event of await identityEvents()) {
      const decision = IdentityEvent.parse(event.data);
      const shown = facts.get(decision.evidence.eventId);
      expect(shown, describeDecision(decision)).toBeDefined();
      const joined =
        decision.type === E.linked
          ? [decision.via, ...decision.identifiers]
          : decision.type === E.merged
            ? decision.bridge
            : decision.type === E.created && decision.reason === 'first_seen'
              ? decision.identifiers
              : [];
      for (const identifier of joined) expect(shown?.has(identifier.hash)).toBe(true);
      checked += joined.length;
    }
    expect(checked).toBeGreaterThan(500);
  });

  it('tells the story of a merged profile in words, from its stream and the streams it absorbed', async () => {
    const resolver = await openResolver({ eventStore, rules: DEFAULT_IDENTITY_RULES });
    await resolver.catchUp();
    const merge = (await identityEvents())
      .map((event) => IdentityEvent.parse(event.data))
      .find((decision) => decision.type === E.merged);
    if (merge?.type !== E.merged) throw new Error('the sample should contain a merge');
    const history = await profileHistory(eventStore, merge.profileId);
    const story = history.map((entry) => describeDecision(entry.event));
    expect(story.some((line) => line.includes(`absorbed ${merge.absorbed}`))).toBe(true);
    expect(story.some((line) => line.startsWith(`${merge.absorbed} created with`))).toBe(true);
    const profile = resolver.graph.profile(merge.profileId);
    const linkedInStory = new Set(
      history.flatMap(({ event }) =>
        event.type === E.created || event.type === E.linked
          ? event.identifiers.map((identifier) => identifier.hash)
          : [],
      ),
    );
    for (const identifier of profile?.identifiers ?? [])
      expect(linkedInStory.has(identifier.hash)).toBe(true);
  });

  it('re-decides the log in other batches than before without appending a decision twice', async () => {
    const first = await openResolver({ eventStore, rules: DEFAULT_IDENTITY_RULES });
    await first.catchUp();
    const count = (await identityEvents()).length;
    // Batches of 7 facts split each profile's decisions into other appends than one big batch made.
    const regrouped = await openResolver({
      eventStore,
      rules: DEFAULT_IDENTITY_RULES,
      batchSize: 7,
    });
    await regrouped.catchUp();
    expect(regrouped.graph.digest()).toBe(first.graph.digest());
    expect(await identityEvents()).toHaveLength(count);
  });

  it('resumes from its snapshot, and equals a rebuild from the whole log without appending anything twice', async () => {
    const first = await openResolver({
      eventStore,
      rules: DEFAULT_IDENTITY_RULES,
      snapshotFile: snapshotFile(),
    });
    const before = await first.catchUp();
    await first.snapshot();

    const ria = aShopper('ria').withAccount().withDevice('phone').build();
    const at = '2026-03-02T09:00:00.000Z';
    await ingestor.tracking(
      SegmentBatch.parse(aBatch([ria.on('phone').views('SKU-9', at), ria.on('phone').logsIn(at)])),
      Date.parse(at),
      { kind: 'app', id: 'app' },
    );

    const resumed = await openResolver({
      eventStore,
      rules: DEFAULT_IDENTITY_RULES,
      snapshotFile: snapshotFile(),
    });
    expect(resumed.status().position).toBe(before.position);
    const after = await resumed.catchUp();
    expect(after.facts).toBe(2);
    const ria_ = resumed.graph.profileOf(hasher.hash('user_id', 'user-ria').hash);
    expect(resumed.graph.profile(ria_ as string)?.identifiers).toHaveLength(3);

    const count = (await identityEvents()).length;
    const rebuilt = await openResolver({ eventStore, rules: DEFAULT_IDENTITY_RULES });
    await rebuilt.catchUp();
    expect(rebuilt.graph.digest()).toBe(resumed.graph.digest());
    expect(await identityEvents()).toHaveLength(count);
  });

  it("splits a profile when an operator's unlink command arrives in the log", async () => {
    const sam = aShopper('sam').withAccount().withDevice('laptop').build();
    const at = '2026-03-03T09:00:00.000Z';
    await ingestor.tracking(
      SegmentBatch.parse(aBatch([sam.on('laptop').logsIn(at)])),
      Date.parse(at),
      { kind: 'web', id: 'web-shop' },
    );
    const resolver = await openResolver({ eventStore, rules: DEFAULT_IDENTITY_RULES });
    await resolver.catchUp();
    const user = hasher.hash('user_id', 'user-sam');
    const device = hasher.hash('anonymous_id', sam.devices.laptop?.anonymousId as string);
    expect(resolver.graph.profileOf(user.hash)).toBe(resolver.graph.profileOf(device.hash));

    await requestUnlink(eventStore, {
      identifiers: [user, device],
      reason: 'a shared laptop',
      requestedBy: 'test',
    });
    await resolver.catchUp();
    expect(resolver.graph.profileOf(user.hash)).not.toBe(resolver.graph.profileOf(device.hash));
  });
});

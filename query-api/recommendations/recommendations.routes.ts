/**
 * Recommendations for marketers' channels: a profile's list (personalised
 * only with consent, every answer says which), a store's own list, and a
 * manual refresh of the model.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ProfileId } from '../../schemas/identity.js';
import {
  ProfileRecommendationQuery,
  ProfileRecommendations,
  type RecommendationSettings,
  StoreRecommendationQuery,
  StoreRecommendations,
} from '../../schemas/recommendations.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { requireRole } from '../auth.js';
import { refreshModel } from './reco-model.js';
import { recommender, recommendForProfile, recommendForStore } from './reco-serve.js';

export interface RecommendationsRoutesOptions {
  readonly warehouse: Warehouse;
  readonly settings: RecommendationSettings;
}

const ModelRefresh = z.object({
  model: z.number(),
  trainedAt: z.string(),
  referenceAt: z.string(),
  profiles: z.number().describe('consenting profiles whose data trained it'),
  items: z.number(),
  pairs: z.number(),
  tookMs: z.number(),
});

export const recommendationsRoutes: FastifyPluginAsync<RecommendationsRoutesOptions> = async (
  app,
  options,
) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const deps = recommender(options.warehouse, options.settings);
  const marketers = { preHandler: requireRole('marketer') };
  const tags = ['recommendations'];

  api.get(
    '/v1/profiles/:profileId/recommendations',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Items for a profile, with a score and a reason each',
        description:
          'Personalised (`personalized: true`) only when the profile consents to personalization now: items similar to what it viewed, carted or bought online and in store, and what it looked at but did not buy; items bought recently are left out. Otherwise, and to fill the list, what sells at the store, in its city, then overall. With `store` (or `context=in_store` and a preferred store), only items that store sells.',
        params: z.object({ profileId: ProfileId }),
        querystring: ProfileRecommendationQuery,
        response: { 200: ProfileRecommendations },
      },
    },
    async (request) =>
      recommendForProfile(deps, {
        profileId: request.params.profileId,
        limit: request.query.limit,
        store: request.query.store,
        context: request.query.context,
      }),
  );

  api.get(
    '/v1/stores/:storeId/recommendations',
    {
      ...marketers,
      schema: {
        tags,
        summary: "A store's own top list: what sells there this week, among what it sells",
        params: z.object({ storeId: z.string().min(1).max(128) }),
        querystring: StoreRecommendationQuery,
        response: { 200: StoreRecommendations },
      },
    },
    async (request) => recommendForStore(deps, request.params.storeId, request.query.limit),
  );

  api.post(
    '/v1/recommendations/refresh',
    {
      ...marketers,
      schema: {
        tags,
        summary: 'Train a new model now (it also trains on a schedule beside the projector)',
        response: { 200: ModelRefresh },
      },
    },
    async () => {
      const refreshed = await refreshModel(options.warehouse, options.settings);
      deps.model.forget();
      return refreshed;
    },
  );
};

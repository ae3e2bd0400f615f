import { afterAll, beforeAll, expect, it } from 'vitest';
import { readSampleFiles } from '../../fixtures/sample.js';
import { expectedSampleCounts, warehouseCounts } from '../../projections/testing/counts.js';
import { openTestApi, type TestApi } from './api-app.js';

let api: TestApi;
beforeAll(async () => {
  api = await openTestApi();
});
afterAll(() => api?.close());

it('opens on the whole sample projected: events, orders, lines, revenue, products and stores', async () => {
  const counts = await warehouseCounts(api.warehouse);
  expect(counts).toEqual(await expectedSampleCounts(await readSampleFiles()));
  expect(counts.products).toBe(200);
  expect(counts.stores).toBe(4);
});

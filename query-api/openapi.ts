/**
 * The OpenAPI 3.1 document, generated from the routes' zod schemas and
 * checked in as docs/openapi.json; a test fails when the two drift apart.
 * `npm run docs:openapi` rewrites the file.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { openTestApi } from './testing/api-app.js';

export const OPENAPI_FILE = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));

/** The document `app` serves at /docs/json, as the checked-in file holds it. */
export async function renderOpenApi(app: FastifyInstance): Promise<string> {
  await app.ready();
  return `${JSON.stringify(app.swagger(), null, 2)}\n`;
}

/** Builds the whole app on empty temp stores and renders its document. */
export async function generateOpenApi(): Promise<string> {
  const api = await openTestApi({ sample: false });
  try {
    return await renderOpenApi(api.app);
  } finally {
    await api.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(OPENAPI_FILE, await generateOpenApi());
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
}

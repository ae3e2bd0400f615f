import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { generateOpenApi, OPENAPI_FILE } from './openapi.js';

it('docs/openapi.json is what the routes say (run `npm run docs:openapi` after an API change)', async () => {
  const generated = await generateOpenApi();
  const document = JSON.parse(generated);
  expect(document.openapi).toBe('3.1.0');
  for (const path of ['/v1/batch', '/v1/profiles/{profileId}', '/v1/segments/preview', '/v1/keys'])
    expect(Object.keys(document.paths)).toContain(path);
  expect(await readFile(OPENAPI_FILE, 'utf8')).toBe(generated);
});

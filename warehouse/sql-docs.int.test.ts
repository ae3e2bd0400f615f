import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { RECOMMENDATION_TABLES } from './recommendation-tables.js';
import { generateSqlDocs, SQL_DOCS_FILE } from './sql-docs.js';
import { PROJECTED_TABLES, SEGMENT_TABLES } from './tables.js';
import { VIEWS } from './views.js';

it('docs/sql.md is what the migrated schema says (run `npm run docs:sql` after a schema change)', async () => {
  const generated = await generateSqlDocs();
  for (const table of [...PROJECTED_TABLES, ...SEGMENT_TABLES, ...RECOMMENDATION_TABLES, ...VIEWS])
    expect(generated).toContain(`## ${table.name} (`);
  expect(await readFile(SQL_DOCS_FILE, 'utf8')).toBe(generated);
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EnvSchema, settingDoc } from './config.js';
import { CONFIG_DOCS_FILE, renderConfigDocs } from './config-docs.js';

describe(renderConfigDocs.name, () => {
  it('documents every variable of EnvSchema, each in a section of its own', () => {
    const rendered = renderConfigDocs();
    for (const variable of Object.keys(EnvSchema.shape) as (keyof typeof EnvSchema.shape)[]) {
      expect(settingDoc(variable).description.length).toBeGreaterThan(0);
      expect(rendered).toContain(`### ${variable}\n`);
    }
  });

  it('is what docs/configuration.md holds', () => {
    const checkedIn = readFileSync(CONFIG_DOCS_FILE, 'utf8');
    expect(
      checkedIn,
      'docs/configuration.md differs from schemas/config.ts: run `npm run docs:config`',
    ).toBe(renderConfigDocs());
  });
});

import { readFile } from 'node:fs/promises';
import { ErrorCodes, TandemError } from '../schemas/errors.js';
import { DEFAULT_IDENTITY_RULES, IdentityRules } from '../schemas/identity.js';

/**
 * The identity rules: the documented defaults, overridden by the JSON file
 * `TANDEM_IDENTITY_RULES` names. A bad file is a configuration error that
 * names the file and the path of every bad field.
 */
export async function loadIdentityRules(file: string | undefined): Promise<IdentityRules> {
  if (!file) return DEFAULT_IDENTITY_RULES;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new TandemError(
      ErrorCodes.CONFIG_INVALID,
      `TANDEM_IDENTITY_RULES: cannot read ${file} as JSON: ${(error as Error).message}`,
    );
  }
  const parsed = IdentityRules.safeParse(json);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(
    (issue) => `  ${issue.path.join('.') || '(root)'}: ${issue.message}`,
  );
  throw new TandemError(
    ErrorCodes.CONFIG_INVALID,
    `TANDEM_IDENTITY_RULES: ${file} is not valid:\n${problems.join('\n')}`,
  );
}

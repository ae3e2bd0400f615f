/**
 * The SQL guard's first step, on tokens alone: one SELECT statement, with no
 * clause that would change how or where it runs. chDB runs its text as
 * several statements, so a `;` anywhere but at the end would start a second
 * one, even inside the `EXPLAIN` of the guard's next steps; the lexer finds
 * `;` where ClickHouse does, never inside a string or a comment.
 */
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import { lex, lineAndColumn, type Token } from './sql-lexer.js';

/** Throws SQL_REFUSED with `message`. */
export function refuse(message: string, details: Record<string, unknown> = {}): never {
  throw new TandemError(ErrorCodes.SQL_REFUSED, message, details);
}

/** Where `token` is in `query`, for messages: `(line 2, column 7)`. */
export function at(query: string, token: Token): string {
  const { line, column } = lineAndColumn(query, token.offset);
  return `(line ${line}, column ${column})`;
}

/** The one statement of an analyst's query, and the names the guard needs from it. */
export interface AnalystStatement {
  /** The query up to its last token before a trailing `;` (comments after it dropped). */
  readonly statement: string;
  /** Names the query gives its CTEs (`name AS (…)`). */
  readonly cteNames: ReadonlySet<string>;
  /** Parameters used as names (`{t:Identifier}`): their values become table or column names. */
  readonly identifierParams: ReadonlySet<string>;
}

/** The lexical step of the SQL guard; throws SQL_REFUSED saying what is wrong and where. */
export function analystStatement(query: string): AnalystStatement {
  const tokens = lex(query).filter((token) => token.kind !== 'comment');
  const error = tokens.find((token) => token.kind === 'error');
  if (error) refuse(`the query cannot be read: ${error.problem} ${at(query, error)}`);
  const first = tokens[0];
  if (!first) refuse('the query is empty');
  if (!(isWord(first, 'SELECT') || isWord(first, 'WITH') || first.text === '('))
    refuse(
      `only SELECT queries can run here; this one starts with ${first.text} ${at(query, first)}`,
    );
  const semicolon = tokens.findIndex((token) => token.kind === 'semicolon');
  const statement = semicolon === -1 ? tokens : tokens.slice(0, semicolon);
  const after = tokens[semicolon + 1];
  if (semicolon !== -1 && after)
    refuse(`one statement only: another starts after the ; ${at(query, after)}`);
  const cteNames = new Set<string>();
  const identifierParams = new Set<string>();
  statement.forEach((token, i) => {
    const [next, third] = [statement[i + 1], statement[i + 2]];
    if (isWord(token, 'SETTINGS'))
      refuse(
        `a SETTINGS clause is not allowed: analyst queries run with fixed limits ${at(query, token)}`,
      );
    if (isWord(token, 'FORMAT') && next?.text !== '(')
      refuse(
        `a FORMAT clause is not allowed: choose the format with the request's format field ${at(query, token)}`,
      );
    if (isWord(token, 'INTO') && next && isWord(next, 'OUTFILE'))
      refuse(`INTO OUTFILE is not allowed: results come back in the response ${at(query, token)}`);
    if (token.kind === 'quoted_identifier' && /[\r\n\\]/.test(token.text))
      refuse(`a quoted name may not hold a line break or a backslash ${at(query, token)}`);
    if (isName(token) && next && isWord(next, 'AS') && third?.text === '(')
      cteNames.add(unquote(token));
    if (
      token.text === '{' &&
      isName(next) &&
      statement[i + 2]?.text === ':' &&
      isWord(statement[i + 3], 'Identifier')
    )
      identifierParams.add(unquote(next as Token));
  });
  const last = statement.at(-1) as Token;
  return { statement: query.slice(0, last.end), cteNames, identifierParams };
}

const isWord = (token: Token | undefined, word: string) =>
  token?.kind === 'word' && token.text.toUpperCase() === word.toUpperCase();
const isName = (token: Token | undefined) =>
  token?.kind === 'word' || token?.kind === 'quoted_identifier';
const unquote = (token: Token) =>
  token.kind === 'quoted_identifier'
    ? token.text
        .slice(1, -1)
        .replaceAll(`${token.text[0]}${token.text[0]}`, token.text[0] as string)
    : token.text;

/**
 * A lexer for ClickHouse SQL, so the SQL guard sees a query's tokens where
 * ClickHouse sees them. It matters for one thing above all: chDB runs the
 * text it is given as several statements, so a `;` outside a string or a
 * comment starts a second one. Where this lexer and ClickHouse's disagree on
 * where a string, a comment or a number ends, a statement could hide from the
 * guard; so it follows ClickHouse's `src/Parsers/Lexer.cpp` rule for rule:
 * strings with backslash and doubled-quote escapes, `x'..'`/`b'..'` literals,
 * heredocs (`$tag$..$tag$`), nested block comments, `--`, `//`, `# `, `#!`
 * comments, and numbers (whose exponent can take a sign: `1e-5`, so `1e--x`
 * is `1e-` then `-x`, not a comment). What ClickHouse cannot lex becomes an
 * `error` token, and the guard refuses the query.
 *
 * Offsets are indices into the JavaScript string (UTF-16 code units);
 * ClickHouse counts bytes, which differ only outside ASCII.
 */

/** What a token is; `error` for what ClickHouse could not lex. */
export type TokenKind =
  | 'word'
  | 'quoted_identifier'
  | 'string'
  | 'number'
  | 'comment'
  | 'semicolon'
  | 'punctuation'
  | 'error';

/** One token: its kind, its text and where it starts and ends in the query. */
export interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly offset: number;
  readonly end: number;
  /** For `error` tokens: what ClickHouse would say is wrong. */
  readonly problem?: string;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isLetter = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
const isHex = (c: string | undefined) =>
  c !== undefined && (isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
const isWordChar = (c: string | undefined) =>
  c !== undefined && (isDigit(c) || isLetter(c) || c === '_');
const isAsciiSpace = (c: string | undefined) => c !== undefined && ' \t\n\r\f\v'.includes(c);
/** What may follow these characters in one operator: `==`, `<=`, `<>`, `>=`, `::`, `||`, `@@`. */
const SECOND: Readonly<Record<string, string>> = {
  '=': '=',
  '<': '=>',
  '>': '=',
  ':': ':',
  '|': '|',
  '@': '@',
};
/** Where a token's kind lets a following `.` be a dot rather than start a number (`x.1.1`). */
const BEFORE_DOT = new Set(['word', 'quoted_identifier', 'number', ')', ']']);

/** The tokens of `sql`, whitespace left out, comments and errors kept. */
export function lex(sql: string): Token[] {
  const tokens: Token[] = [];
  const end = sql.length;
  let pos = 0;
  let prevSignificant: string | undefined;
  let problem: string | undefined;
  let heredocEnd: ((start: number) => number) | undefined;
  const fail = (what: string): TokenKind => {
    problem = what;
    return 'error';
  };

  // An `_` inside a number separates digits (1_000), never at a block's start or end.
  const isSeparator = (at: number, startOfBlock: boolean, hex: boolean) =>
    sql[at] === '_' && !startOfBlock && at + 1 < end && (hex ? isHex : isDigit)(sql[at + 1]);

  const digits = (hex: boolean, startOfBlock: boolean) => {
    let start = startOfBlock;
    while (pos < end && ((hex ? isHex : isDigit)(sql[pos]) || isSeparator(pos, start, hex))) {
      pos++;
      start = false;
    }
  };

  const quoted = (quote: string): boolean => {
    pos++;
    while (pos < end) {
      const c = sql[pos];
      if (c === quote) {
        pos++;
        if (sql[pos] !== quote) return true;
        pos++;
      } else if (c === '\\') {
        pos += 2;
      } else pos++;
    }
    pos = end;
    return false;
  };

  const untilEndOfLine = () => {
    const newline = sql.indexOf('\n', pos);
    pos = newline === -1 ? end : newline;
  };

  /** Lexes one token starting at `pos`; returns its kind, or undefined for whitespace. */
  const next = (): TokenKind | undefined => {
    const c = sql[pos] as string;
    const c1 = sql[pos + 1];
    if (isAsciiSpace(c)) {
      while (pos < end && isAsciiSpace(sql[pos])) pos++;
      return undefined;
    }
    if (isDigit(c)) return number();
    switch (c) {
      case "'":
        return quoted("'") ? 'string' : fail('string not closed');
      case '"':
      case '`':
        return quoted(c) ? 'quoted_identifier' : fail('quoted name not closed');
      case ';':
        pos++;
        return 'semicolon';
      case '.':
        return dot();
      case '-':
        if (c1 === '-') {
          pos += 2;
          untilEndOfLine();
          return 'comment';
        }
        pos += c1 === '>' ? 2 : 1;
        return 'punctuation';
      case '/':
        if (c1 === '/') {
          pos += 2;
          untilEndOfLine();
          return 'comment';
        }
        if (c1 === '*') return blockComment();
        pos++;
        return 'punctuation';
      case '#':
        // A comment only as `# ` or `#!`: `#x` is an error to ClickHouse.
        pos++;
        if (sql[pos] === ' ' || sql[pos] === '!') {
          untilEndOfLine();
          return 'comment';
        }
        return fail('unexpected #');
      case '!':
        pos++;
        if (sql[pos] !== '=') return fail('! outside !=');
        pos++;
        return 'punctuation';
      case '\\':
        // `\G` ends a query for clickhouse-client; here it is no statement end.
        pos += c1 === 'G' ? 2 : 1;
        return fail(c1 === 'G' ? '\\G is not allowed' : 'unexpected \\');
      case '=':
      case '<':
      case '>':
      case ':':
      case '|':
      case '@': {
        pos++;
        if (sql[pos] !== undefined && (SECOND[c] as string).includes(sql[pos] as string)) pos++;
        return 'punctuation';
      }
      default:
        if ('()[]{},+*%?'.includes(c)) {
          pos++;
          return 'punctuation';
        }
        return wordOrOther();
    }
  };

  const number = (): TokenKind => {
    const start = pos;
    if (prevSignificant === '.') {
      // After a dot only a plain integer (tuple access `x.1.1`).
      pos++;
      digits(false, false);
    } else {
      let hex = false;
      let startOfBlock = false;
      const x = sql[pos + 1];
      if (pos + 2 < end && sql[pos] === '0' && x !== undefined && 'xXbB'.includes(x)) {
        const valid =
          x === 'x' || x === 'X' ? isHex(sql[pos + 2]) : '01'.includes(sql[pos + 2] ?? '');
        hex = valid && (x === 'x' || x === 'X');
        pos += valid ? 2 : 1;
        startOfBlock = valid;
      } else pos++;
      digits(hex, startOfBlock);
      if (sql[pos] === '.') {
        pos++;
        digits(hex, true);
      }
      exponent(hex ? 'pP' : 'eE');
    }
    if (pos < end && isWordChar(sql[pos])) {
      // `1abc` is a name; `1.5abc` or `1e-5x` is a wrong number.
      while (pos < end && isWordChar(sql[pos])) pos++;
      return /^[0-9a-zA-Z_$]*$/.test(sql.slice(start, pos)) ? 'word' : fail('wrong number');
    }
    return 'number';
  };

  const exponent = (letters: string) => {
    if (pos + 1 < end && letters.includes(sql[pos] as string)) {
      pos++;
      if (pos + 1 < end && (sql[pos] === '-' || sql[pos] === '+')) pos++;
      digits(false, true);
    }
  };

  const dot = (): TokenKind => {
    if (pos > 0 && (!isDigit(sql[pos + 1]) || BEFORE_DOT.has(prevSignificant ?? ''))) {
      pos++;
      return 'punctuation';
    }
    pos++;
    digits(false, true);
    exponent('eE');
    return 'number';
  };

  const blockComment = (): TokenKind => {
    // Nested, as in the SQL standard: /* a /* b */ c */ is one comment.
    pos += 2;
    let depth = 1;
    while (pos + 2 <= end) {
      if (sql[pos] === '/' && sql[pos + 1] === '*') {
        pos += 2;
        depth++;
      } else if (sql[pos] === '*' && sql[pos + 1] === '/') {
        pos += 2;
        if (--depth === 0) return 'comment';
      } else pos++;
    }
    pos = end;
    return fail('comment not closed');
  };

  const wordOrOther = (): TokenKind | undefined => {
    const c = sql[pos] as string;
    if (c === '$') {
      heredocEnd ??= heredocs(sql);
      const close = heredocEnd(pos);
      if (close !== -1) {
        pos = close;
        return 'string';
      }
      if (!isWordChar(sql[pos + 1])) {
        pos++;
        return 'punctuation';
      }
    }
    if (pos + 2 < end && sql[pos + 1] === "'" && 'xXbB'.includes(c)) return hexOrBinString(c);
    if (isWordChar(c) || c === '$') {
      pos++;
      while (pos < end && (isWordChar(sql[pos]) || sql[pos] === '$')) pos++;
      return 'word';
    }
    if (/\s/u.test(c)) {
      pos++;
      return undefined;
    }
    pos += c.length;
    return fail(`unexpected character ${JSON.stringify(c)}`);
  };

  const hexOrBinString = (c: string): TokenKind => {
    const valid =
      c === 'x' || c === 'X' ? isHex : (d: string | undefined) => d === '0' || d === '1';
    pos += 2;
    while (pos < end && valid(sql[pos])) pos++;
    if (sql[pos] !== "'") {
      pos = end;
      return fail('string not closed');
    }
    pos++;
    return 'string';
  };

  while (pos < end) {
    const offset = pos;
    problem = undefined;
    const kind = next();
    if (kind === undefined) continue;
    const text = sql.slice(offset, pos);
    tokens.push(
      problem === undefined
        ? { kind, text, offset, end: pos }
        : { kind, text, offset, end: pos, problem },
    );
    if (kind !== 'comment') prevSignificant = kind === 'punctuation' ? text : kind;
  }
  return tokens;
}

/**
 * Where the heredoc that a `$tag$` at `start` opens ends, or -1: after the
 * next `$tag$`, whatever the tag holds (ClickHouse's rule). A tag holds no `$`
 * but its two, so each `$tag$` spans one `$` to the next; an index of those
 * spans makes each search a lookup, where `indexOf` at every `$` of a query
 * full of them would take quadratic time.
 */
/**
 * The query with every literal and comment blanked (strings become `'…'`,
 * numbers `?`, comments an empty block comment with an ellipsis),
 * for the audit trail: an analyst who typed an email or a phone into a query
 * leaves its shape on record, never the value.
 */
export function withoutLiterals(sql: string): string {
  let out = '';
  let at = 0;
  for (const token of lex(sql)) {
    const blank =
      token.kind === 'string'
        ? "'…'"
        : token.kind === 'number'
          ? '?'
          : token.kind === 'comment'
            ? '/* … */'
            : token.kind === 'error'
              ? '…'
              : undefined;
    if (blank === undefined) continue;
    out += sql.slice(at, token.offset) + blank;
    at = token.end;
  }
  return out + sql.slice(at);
}

export function heredocs(sql: string): (start: number) => number {
  const spans = new Map<string, number[]>();
  for (let at = sql.indexOf('$'); at !== -1; ) {
    const next = sql.indexOf('$', at + 1);
    if (next === -1) break;
    const tag = sql.slice(at, next + 1);
    const starts = spans.get(tag);
    if (starts) starts.push(at);
    else spans.set(tag, [at]);
    at = next;
  }
  return (start) => {
    const next = sql.indexOf('$', start + 1);
    if (next === -1) return -1;
    const tag = sql.slice(start, next + 1);
    const starts = spans.get(tag) ?? [];
    // The first span at or after `start + tag.length`; the starts ascend.
    let [low, high] = [0, starts.length];
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((starts[middle] as number) < start + tag.length) low = middle + 1;
      else high = middle;
    }
    const close = starts[low];
    return close === undefined ? -1 : close + tag.length;
  };
}

/** The 1-based line and column of `offset` in `sql`. */
export function lineAndColumn(sql: string, offset: number): { line: number; column: number } {
  const before = sql.slice(0, offset);
  const lastNewline = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: offset - lastNewline };
}

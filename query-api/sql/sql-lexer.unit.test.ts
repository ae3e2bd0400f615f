import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { heredocs, lex, lineAndColumn, type TokenKind } from './sql-lexer.js';

const kinds = (sql: string) => lex(sql).map((token) => [token.kind, token.text]);
const semicolons = (sql: string) => lex(sql).filter((token) => token.kind === 'semicolon').length;
const only = (sql: string, kind: TokenKind) => {
  const tokens = lex(sql);
  expect(tokens.map((token) => token.kind)).toEqual([kind]);
  return tokens[0];
};

describe(lex.name, () => {
  it('splits a query into words, numbers, strings and punctuation, with offsets', () => {
    expect(lex("SELECT a, 'x' FROM t;")).toEqual([
      { kind: 'word', text: 'SELECT', offset: 0, end: 6 },
      { kind: 'word', text: 'a', offset: 7, end: 8 },
      { kind: 'punctuation', text: ',', offset: 8, end: 9 },
      { kind: 'string', text: "'x'", offset: 10, end: 13 },
      { kind: 'word', text: 'FROM', offset: 14, end: 18 },
      { kind: 'word', text: 't', offset: 19, end: 20 },
      { kind: 'semicolon', text: ';', offset: 20, end: 21 },
    ]);
  });

  it.each([
    ["'a;b'", 'string'],
    ["'it\\'s; fine'", 'string'],
    ["'it''s; fine'", 'string'],
    ["'ends in a backslash\\\\'", 'string'],
    ['`a;b`', 'quoted_identifier'],
    ['"a"";b"', 'quoted_identifier'],
    ["$$a';$$", 'string'],
    ['$tag$ ; $$ ; $tag$', 'string'],
    ["x'4142'", 'string'],
    ["b'0101'", 'string'],
    ['-- a; b', 'comment'],
    ['// a; b', 'comment'],
    ['# a; b', 'comment'],
    ['#!/usr/bin/env; b', 'comment'],
    ['/* a; b */', 'comment'],
    ['/* a /* ; */ ; */', 'comment'],
  ] as const)('keeps the ; inside %s', (sql, kind) => {
    expect(only(sql, kind)?.text).toBe(sql);
  });

  it.each([
    'SELECT 1 /* x */ ; DROP TABLE events',
    'SELECT 1 -- x\n; DROP TABLE events',
    'SELECT 1 # x\n; DROP TABLE events',
    "SELECT 'a\\\\'; DROP TABLE events",
    'SELECT 1 /* a /* b */ */; DROP TABLE events',
    'SELECT 1e--x; DROP TABLE events',
    'SELECT $a$x; DROP TABLE events',
  ])('finds the ; that starts a second statement in %j', (sql) => {
    expect(semicolons(sql)).toBe(1);
  });

  it('ends a line comment at a newline only', () => {
    expect(kinds('-- a\r; b')).toEqual([['comment', '-- a\r; b']]);
    expect(kinds('1 -- a\n2')).toEqual([
      ['number', '1'],
      ['comment', '-- a'],
      ['number', '2'],
    ]);
  });

  it('reads numbers as ClickHouse does, exponent signs included', () => {
    expect(kinds('1e-5 0x1F 0b101 1_000 1.5 (.5e+3)')).toEqual([
      ['number', '1e-5'],
      ['number', '0x1F'],
      ['number', '0b101'],
      ['number', '1_000'],
      ['number', '1.5'],
      ['punctuation', '('],
      ['number', '.5e+3'],
      ['punctuation', ')'],
    ]);
    // After a name or a number a dot is a dot, as ClickHouse reads `SELECT .5` (a syntax error).
    expect(kinds('SELECT .5').map(([kind]) => kind)).toEqual(['word', 'punctuation', 'number']);
    expect(kinds('1e--x')).toEqual([
      ['number', '1e-'],
      ['punctuation', '-'],
      ['word', 'x'],
    ]);
    expect(kinds('1abc')).toEqual([['word', '1abc']]);
    expect(lex('1.5abc')[0]?.kind).toBe('error');
  });

  it('reads x.1.1 as tuple access, not a decimal', () => {
    expect(kinds('x.1.1').map(([, text]) => text)).toEqual(['x', '.', '1', '.', '1']);
  });

  it('reads operators of two characters as one token', () => {
    expect(
      kinds('a->b != c <= d <> e == f :: g || h').filter(([k]) => k === 'punctuation'),
    ).toEqual(['->', '!=', '<=', '<>', '==', '::', '||'].map((text) => ['punctuation', text]));
  });

  it('makes words of names with $ and numbers of names that start with digits', () => {
    expect(kinds('a$b $c')).toEqual([
      ['word', 'a$b'],
      ['word', '$c'],
    ]);
    expect(kinds('$ 1')).toEqual([
      ['punctuation', '$'],
      ['number', '1'],
    ]);
  });

  it.each([
    ["SELECT 'open", 'string not closed'],
    ['SELECT `open', 'quoted name not closed'],
    ['SELECT /* open /* */', 'comment not closed'],
    ['SELECT 1 #x', 'unexpected #'],
    ['SELECT 1 \\G', '\\G is not allowed'],
    ['SELECT !a', '! outside !='],
    ["SELECT x'4\\'", 'string not closed'],
    ['SELECT a ^ b', 'unexpected character "^"'],
    ['SELECT é', 'unexpected character "é"'],
  ])('marks what ClickHouse cannot lex in %j as an error', (sql, problem) => {
    expect(lex(sql).find((token) => token.kind === 'error')?.problem).toBe(problem);
  });

  it('skips Unicode white space as ClickHouse does', () => {
    expect(kinds('SELECT\u00a01')).toEqual([
      ['word', 'SELECT'],
      ['number', '1'],
    ]);
  });
});

describe(heredocs.name, () => {
  it('ends a heredoc where ClickHouse’s search for the next $tag$ does', () => {
    // ClickHouse: the tag runs to the next `$`; the heredoc to the tag's next occurrence.
    const naive = (sql: string, start: number) => {
      const tagEnd = sql.indexOf('$', start + 1);
      if (tagEnd === -1) return -1;
      const tag = sql.slice(start, tagEnd + 1);
      const close = sql.indexOf(tag, start + tag.length);
      return close === -1 ? -1 : close + tag.length;
    };
    const text = fc.string({ unit: fc.constantFrom('$', 'a', 'b', ' ', ';'), maxLength: 40 });
    fc.assert(
      fc.property(text, (sql) => {
        const end = heredocs(sql);
        for (let at = sql.indexOf('$'); at !== -1; at = sql.indexOf('$', at + 1))
          expect(end(at), `${JSON.stringify(sql)} at ${at}`).toBe(naive(sql, at));
      }),
    );
  });
});

describe(lineAndColumn.name, () => {
  it('counts lines and columns from 1', () => {
    expect(lineAndColumn('ab\ncd', 0)).toEqual({ line: 1, column: 1 });
    expect(lineAndColumn('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
  });
});

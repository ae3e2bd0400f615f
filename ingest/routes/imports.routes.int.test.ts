import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../eventstore/testing/helpers.js';
import { readSampleFiles } from '../../fixtures/sample.js';
import { POS_LINE_COLUMNS } from '../../schemas/pos.js';
import { BASIC_AUTH, openTestIngestApp, type TestIngestApp } from '../testing/ingest-app.js';
import { importRoutes, removeAbandonedSpools } from './imports.routes.js';

const post = (test: TestIngestApp, contentType: string, payload: string | Buffer, mode?: string) =>
  test.app.inject({
    method: 'POST',
    url: `/v1/imports${mode ? `?mode=${mode}` : ''}`,
    headers: { 'content-type': contentType, authorization: BASIC_AUTH },
    payload,
  });

describe(importRoutes.name, () => {
  let test: TestIngestApp;
  let sample: Map<string, Buffer>;
  let receipts: number;
  beforeAll(async () => {
    test = await openTestIngestApp('+1');
    sample = await readSampleFiles();
    receipts = (JSON.parse(String(sample.get('manifest.json'))) as { counts: { receipts: number } })
      .counts.receipts;
  });
  afterAll(() => test.close());
  const receiptsInLog = async () =>
    (await collect(test.eventStore.readAll({ filter: { eventTypePrefixes: ['pos.'] } }))).length;

  it('imports the sample in each format — NDJSON, CSV, Arrow, Parquet — and the same receipts land once', async () => {
    const csv = sample.get('pos/receipts.csv') as Buffer;
    const table = tableFromIPC(sample.get('pos/receipts.arrows') as Buffer);
    const parquet = Buffer.from(
      parquetWriteBuffer({
        columnData: POS_LINE_COLUMNS.map((name) => {
          const data = table.getChild(name)?.toArray() as unknown[];
          const type =
            name === 'line_no' || name === 'quantity'
              ? 'INT32'
              : name === 'unit_price' || name === 'discount'
                ? 'DOUBLE'
                : 'STRING';
          return { name, data: [...data], type };
        }),
      }),
    );
    const uploads: [string, Buffer][] = [
      ['application/x-ndjson', sample.get('pos/receipts.ndjson') as Buffer],
      ['text/csv', csv],
      ['application/vnd.apache.arrow.stream', sample.get('pos/receipts.arrows') as Buffer],
      ['application/vnd.apache.parquet', parquet],
    ];
    for (const [contentType, body] of uploads) {
      const response = await post(test, contentType, body);
      expect(response.statusCode, `${contentType}: ${response.body.slice(0, 300)}`).toBe(200);
      expect(response.json()).toMatchObject({
        success: true,
        mode: 'strict',
        accepted: receipts,
        rejected: 0,
        errors: [],
      });
      expect(await receiptsInLog()).toBe(receipts);
    }
  });

  describe('a CSV with bad rows', () => {
    const header = POS_LINE_COLUMNS.join(',');
    const good = (id: string, line = 1) =>
      `${id},store-001,reg-1,2026-05-01T10:00:00.000+08:00,CNY,${line},SKU-1,2,10.5,1,card,tok_1,,M1,,`;
    const file = [
      header,
      good('R-good-1'),
      good('R-good-1', 2),
      'R-bad-1,store-001,reg-1,yesterday,CNY,1,SKU-1,2,10.5,1,card,tok_1,,,,',
      good('R-good-2'),
      'R-bad-2,store-001,reg-1,2026-05-01T10:00:00.000+08:00,CNY,1,SKU-1,0,-3,1,barter,,,,,',
    ].join('\n');

    it('strict (the default): imports nothing and names each bad row by line and field', async () => {
      const before = await receiptsInLog();
      const response = await post(test, 'text/csv', file);
      expect(response.statusCode).toBe(400);
      const report = response.json();
      expect(report).toMatchObject({ success: false, mode: 'strict', accepted: 0, rejected: 2 });
      expect(report.errors).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ line: 4, path: 'occurred_at' }),
          expect.objectContaining({ line: 6, path: 'quantity' }),
          expect.objectContaining({ line: 6, path: 'unit_price' }),
          expect.objectContaining({ line: 6, path: 'tender_type' }),
        ]),
      );
      expect(await receiptsInLog()).toBe(before);
    });

    it('lenient: imports the good receipts and reports the bad rows', async () => {
      const before = await receiptsInLog();
      const response = await post(test, 'text/csv', file, 'lenient');
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({
        success: true,
        mode: 'lenient',
        accepted: 2,
        rejected: 2,
      });
      expect(await receiptsInLog()).toBe(before + 2);
    });
  });

  it('refuses an unknown format and a missing write key', async () => {
    expect((await post(test, 'application/xml', '<receipts/>')).statusCode).toBe(415);
    const anonymous = await test.app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: { 'content-type': 'text/csv' },
      payload: 'x',
    });
    expect(anonymous.statusCode).toBe(401);
  });

  it('refuses an unknown mode with the parameter named', async () => {
    const response = await post(test, 'text/csv', 'x', 'sloppy');
    expect(response.statusCode).toBe(400);
    expect(response.json().error.issues[0].path).toBe('mode');
  });

  it('removes the spools of processes that are gone (killed mid-import), and only those', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-spools-'));
    try {
      // Above Linux's largest pid (2^22): no process has it.
      const gone = `tandem-import-${2 ** 22 + 1}-a1`;
      const running = `tandem-import-${process.ppid}-b2`;
      const samePidEarlier = `tandem-import-${process.pid}-c3`;
      const others = ['tandem-import-Xy12ab', 'someone-else'];
      for (const name of [gone, running, samePidEarlier, ...others]) {
        await mkdir(join(dir, name));
        await writeFile(join(dir, name, 'upload.csv'), 'receipt_id,phone\nR-1,+15555550100\n');
      }
      expect((await removeAbandonedSpools(dir)).sort()).toEqual(
        [gone, samePidEarlier].map((name) => join(dir, name)).sort(),
      );
      expect((await readdir(dir)).sort()).toEqual([running, ...others].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

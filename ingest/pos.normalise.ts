/**
 * POS receipts → pending facts. The member card, the phone typed at the
 * till and the payment tokens become identifiers (hashed) and are sealed;
 * the basket, totals and consent stay readable for analytics.
 */

import type { IdentifierHasher, NormaliseOptions } from '../privacy/identifiers.js';
import type { Source } from '../schemas/envelope.js';
import type { PosReceipt } from '../schemas/pos.js';
import { eventIdFor, identifierCollector, type PendingFact } from './fact.js';

export interface ReceiptContext {
  readonly receivedAt: number;
  /** The sending system; its store comes from the receipt. */
  readonly sourceId: string;
  readonly hasher: IdentifierHasher;
  readonly normalise: NormaliseOptions;
}

/** One receipt as a pending fact. Its subject is the member card, else the phone, else the first payment token. */
export function normaliseReceipt(receipt: PosReceipt, context: ReceiptContext): PendingFact {
  const source: Source = { kind: 'pos', id: context.sourceId, storeId: receipt.storeId };
  const identifiers = identifierCollector(context.hasher, context.normalise);
  const add = identifiers.add;
  const member = add('member_id', receipt.memberId);
  const phone = add('phone', receipt.phone);
  const tokens = receipt.tenders.map((tender) =>
    add('payment_token', tender.cardToken ?? tender.walletId),
  );
  const cents = receipt.lines.reduce(
    (sum, line) =>
      sum + Math.round(line.unitPrice * 100) * line.quantity - Math.round(line.discount * 100),
    0,
  );
  const personal: Record<string, unknown> = {
    ...(receipt.memberId === undefined ? {} : { memberId: receipt.memberId }),
    ...(receipt.phone === undefined ? {} : { phone: receipt.phone }),
  };
  receipt.tenders.forEach((tender, i) => {
    if (tender.cardToken !== undefined) personal[`tenders.${i}.cardToken`] = tender.cardToken;
    if (tender.walletId !== undefined) personal[`tenders.${i}.walletId`] = tender.walletId;
  });
  return {
    envelope: {
      id: eventIdFor(source, `${receipt.storeId}\u0000${receipt.receiptId}`),
      type: 'pos.receipt',
      v: 1,
      source,
      occurredAt: new Date(Date.parse(receipt.occurredAt)).toISOString(),
      receivedAt: new Date(context.receivedAt).toISOString(),
      identifiers: identifiers.all,
      data: {
        channel: 'offline',
        receiptId: receipt.receiptId,
        storeId: receipt.storeId,
        registerId: receipt.registerId,
        localTime: receipt.occurredAt,
        currency: receipt.currency,
        lines: receipt.lines.map((line) => ({ ...line })),
        tenders: receipt.tenders.map((tender) => ({ type: tender.type, amount: tender.amount })),
        totalCents: cents,
        ...(receipt.consent ? { consent: { purposes: { ...receipt.consent.purposes } } } : {}),
      },
    },
    pii: Object.keys(personal).length > 0 ? personal : undefined,
    subject: member ?? phone ?? tokens.find((token) => token !== undefined),
  };
}

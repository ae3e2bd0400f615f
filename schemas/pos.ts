/**
 * Point-of-sale receipts, as a store system sends them live (JSON) and as
 * exports carry them in flat files (one row per line item).
 */
import { z } from 'zod';
import { pii } from './pii.js';

const Id = z.string().min(1).max(128);
const Money = z.number().finite().min(0).max(10_000_000);
/** Local time with the store's offset, or UTC (`Z`). */
const Timestamp = z.iso.datetime({ offset: true });

export const TENDER_TYPES = ['cash', 'card', 'mobile_wallet'] as const;

export const PosLine = z.strictObject({
  sku: Id,
  quantity: z.number().int().min(1).max(10_000),
  unitPrice: Money,
  discount: Money.default(0),
});

export const PosTender = z.strictObject({
  type: z.enum(TENDER_TYPES),
  amount: Money,
  /** A processor token for the card, never the card number. */
  cardToken: Id.optional(),
  walletId: Id.optional(),
});

/** Purposes a shopper agreed to (or refused) when signing up at the till. */
export const PosConsent = z.strictObject({
  purposes: z.record(z.string().min(1).max(64), z.boolean()),
});

export const PosReceipt = z
  .strictObject({
    receiptId: Id,
    storeId: Id,
    registerId: Id,
    occurredAt: Timestamp,
    currency: z.string().regex(/^[A-Z]{3}$/, 'ISO 4217 currency code, e.g. CNY'),
    lines: z.array(PosLine).min(1).max(1000),
    tenders: z.array(PosTender).min(1).max(10),
    memberId: Id.optional(),
    /** Typed at the till by the cashier: may carry typos. */
    phone: pii(z.string().min(3).max(32), 'phone').optional(),
    consent: PosConsent.optional(),
  })
  .refine(
    (receipt) =>
      Math.abs(
        receipt.tenders.reduce((sum, tender) => sum + tender.amount, 0) -
          receipt.lines.reduce(
            (sum, line) => sum + line.quantity * line.unitPrice - line.discount,
            0,
          ),
      ) < 0.005,
    {
      message: 'tenders must add up to the lines (quantity × unit price − discount)',
      path: ['tenders'],
    },
  );
export type PosReceipt = z.infer<typeof PosReceipt>;

/**
 * One line item of a receipt in a flat export (CSV, Arrow, Parquet): the
 * receipt's fields repeat on each of its lines; one tender per receipt.
 */
export const PosLineRow = z.strictObject({
  receipt_id: Id,
  store_id: Id,
  register_id: Id,
  occurred_at: Timestamp,
  currency: z.string().regex(/^[A-Z]{3}$/),
  line_no: z.number().int().min(1),
  sku: Id,
  quantity: z.number().int().min(1).max(10_000),
  unit_price: Money,
  discount: Money,
  tender_type: z.enum(TENDER_TYPES),
  card_token: Id.nullable(),
  wallet_id: Id.nullable(),
  member_id: Id.nullable(),
  phone: pii(z.string().min(3).max(32), 'phone').nullable(),
  consent_purposes: z.string().max(512).nullable(),
});
export type PosLineRow = z.infer<typeof PosLineRow>;

/** Column order of the flat formats. */
export const POS_LINE_COLUMNS = Object.keys(PosLineRow.shape) as (keyof PosLineRow)[];

/** A receipt as flat rows, one per line item; the first tender stands for the receipt. */
export function receiptRows(receipt: PosReceipt): PosLineRow[] {
  const tender = receipt.tenders[0];
  return receipt.lines.map((line, i) => ({
    receipt_id: receipt.receiptId,
    store_id: receipt.storeId,
    register_id: receipt.registerId,
    occurred_at: receipt.occurredAt,
    currency: receipt.currency,
    line_no: i + 1,
    sku: line.sku,
    quantity: line.quantity,
    unit_price: line.unitPrice,
    discount: line.discount,
    tender_type: tender?.type ?? 'cash',
    card_token: tender?.cardToken ?? null,
    wallet_id: tender?.walletId ?? null,
    member_id: receipt.memberId ?? null,
    phone: receipt.phone ?? null,
    consent_purposes: receipt.consent ? JSON.stringify(receipt.consent.purposes) : null,
  }));
}

import { z } from 'zod';

const Id = z.string().min(1).max(128);

/** A product of the catalog: the `products` dimension. */
export const Product = z.strictObject({
  sku: Id,
  name: z.string().min(1).max(256),
  category: z.string().min(1).max(64),
  brand: z.string().min(1).max(64),
  price: z.number().finite().min(0),
  currency: z.string().regex(/^[A-Z]{3}$/),
});
export type Product = z.infer<typeof Product>;

/** A physical store: the `stores` dimension. `categories` is what it sells. */
export const Store = z.strictObject({
  storeId: Id,
  name: z.string().min(1).max(256),
  city: z.string().min(1).max(128),
  district: z.string().min(1).max(128),
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  /** IANA time zone, for local receipt times. */
  timeZone: z.string().min(1).max(64),
  categories: z.array(z.string().min(1).max(64)).min(1),
});
export type Store = z.infer<typeof Store>;

/** Catalog entries in the log: one envelope an entry (no identifiers, nothing sealed), the entry itself as its `data`. */
export const CatalogEventTypes = {
  product: 'catalog.product_upserted',
  store: 'catalog.store_upserted',
} as const;

/** Streams of the catalog entries. */
export const CatalogStreams = {
  products: 'catalog-products',
  stores: 'catalog-stores',
} as const;

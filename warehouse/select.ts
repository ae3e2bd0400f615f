import type { ClickHouseClient } from '@clickhouse/client';

/** Runs a parameterised SELECT and returns its rows as objects (values through `{name:Type}` parameters, never spliced). */
export async function selectRows<T>(
  client: ClickHouseClient,
  query: string,
  params: Record<string, unknown> = {},
): Promise<T[]> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

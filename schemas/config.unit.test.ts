import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { ErrorCodes, TandemError } from './errors.js';

describe(loadConfig.name, () => {
  it('defaults to the embedded stores under ./tandem-data', () => {
    const config = loadConfig({}, '/srv/app');
    expect(config.dataDir).toBe('/srv/app/tandem-data');
    expect(config.eventStore).toEqual({ kind: 'lmdb', path: '/srv/app/tandem-data/eventstore' });
    expect(config.warehouse).toEqual({
      target: { kind: 'chdb', path: '/srv/app/tandem-data/clickhouse' },
      database: 'tandem',
      cluster: undefined,
    });
    expect(config.log).toEqual({ level: 'info', format: undefined });
    expect(config.consent.purposes).toEqual([
      'analytics',
      'personalization',
      'marketing_email',
      'marketing_sms',
    ]);
  });

  it('reads the consent purposes as a comma-separated list, and names a bad one', () => {
    expect(
      loadConfig({ TANDEM_CONSENT_PURPOSES: 'analytics, loyalty_program,analytics' }, '/x').consent
        .purposes,
    ).toEqual(['analytics', 'loyalty_program']);
    expect(() =>
      loadConfig({ TANDEM_CONSENT_PURPOSES: 'analytics,Loyalty Program' }, '/x'),
    ).toThrow(
      /TANDEM_CONSENT_PURPOSES: purpose must be snake_case \(got "analytics,Loyalty Program"\)/,
    );
  });

  it('switches to the servers when their URLs are set', () => {
    const config = loadConfig(
      {
        TANDEM_EVENTSTORE_URL: 'kurrentdb+discover://node1:2113,node2:2113?tls=true',
        TANDEM_CLICKHOUSE_URL: 'https://clickhouse.internal:8443',
        TANDEM_CLICKHOUSE_CLUSTER: 'tandem_cluster',
        TANDEM_DATA_DIR: '/var/lib/tandem',
      },
      '/srv/app',
    );
    expect(config.eventStore).toEqual({
      kind: 'kurrentdb',
      connectionString: 'kurrentdb+discover://node1:2113,node2:2113?tls=true',
    });
    expect(config.warehouse).toEqual({
      target: { kind: 'server', url: 'https://clickhouse.internal:8443' },
      database: 'tandem',
      cluster: 'tandem_cluster',
    });
    expect(config.dataDir).toBe('/var/lib/tandem');
  });

  it('treats empty variables as unset', () => {
    expect(
      loadConfig({ TANDEM_EVENTSTORE_URL: '  ', TANDEM_LOG_LEVEL: '' }, '/x').eventStore.kind,
    ).toBe('lmdb');
  });

  it('names every bad variable, what is wrong with it, and what it got', () => {
    const error = (() => {
      try {
        loadConfig({
          TANDEM_LOG_LEVEL: 'loud',
          TANDEM_EVENTSTORE_URL: 'http://kurrent:2113',
          TANDEM_LOG_FORMAT: 'xml',
        });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(TandemError);
    expect(error).toMatchObject({ code: ErrorCodes.CONFIG_INVALID });
    const message = (error as Error).message;
    expect(message).toMatch(/TANDEM_LOG_LEVEL: .*"info".*\(got "loud"\)/);
    expect(message).toMatch(/TANDEM_EVENTSTORE_URL: must be a KurrentDB connection string/);
    expect(message).toMatch(/TANDEM_LOG_FORMAT: .*\(got "xml"\)/);
  });
});

describe('secret settings', () => {
  it('never echo a secret value in the error, only its length', () => {
    try {
      loadConfig({ TANDEM_WRITE_KEY: 'short-secret', TANDEM_DEFAULT_PHONE_COUNTRY_CODE: '86' });
      expect.unreachable();
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toContain(
        'TANDEM_WRITE_KEY: must be at least 16 characters (got 12 characters, not shown)',
      );
      expect(message).not.toContain('short-secret');
      expect(message).toContain(
        'TANDEM_DEFAULT_PHONE_COUNTRY_CODE: must be a country calling code such as +86 (got "86")',
      );
    }
  });

  it('read the server address and the secrets directory', () => {
    const config = loadConfig({ TANDEM_PORT: '0', TANDEM_HOST: '0.0.0.0' }, '/srv/app');
    expect(config.server).toEqual({ host: '0.0.0.0', port: 0 });
    expect(config.secrets.directory).toBe('/srv/app/tandem-data/secrets');
  });
});

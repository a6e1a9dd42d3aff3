import { describe, expect, it } from 'vitest';
import { busSettings } from './config.js';

describe('busSettings', () => {
  it('defaults to a local server, info logs, one replica and no TLS', () => {
    expect(busSettings({})).toEqual({
      servers: 'nats://127.0.0.1:4222',
      credsFile: undefined,
      tls: undefined,
      logLevel: 'info',
      json: false,
      replicas: 1,
    });
  });

  it('reads the connection, TLS and log variables (CP_LOG_LEVEL before LOG_LEVEL)', () => {
    const s = busSettings({
      NATS_URL: 'nats://a:1,nats://b:2',
      NATS_CREDS: '/c.creds',
      NATS_CA: '/ca.pem',
      NATS_CERT: '/c.pem',
      NATS_KEY: '/k.pem',
      LOG_LEVEL: 'warn',
      CP_LOG_LEVEL: 'debug',
      CP_LOG_FORMAT: 'json',
      CP_REPLICAS: '3',
    });
    expect(s).toEqual({
      servers: 'nats://a:1,nats://b:2',
      credsFile: '/c.creds',
      tls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' },
      logLevel: 'debug',
      json: true,
      replicas: 3,
    });
    expect(busSettings({ LOG_LEVEL: 'warn' }).logLevel).toBe('warn');
  });

  it('names the variable of a bad value', () => {
    expect(() => busSettings({ CP_REPLICAS: '6' })).toThrow(
      /^CP_REPLICAS must be a whole number, from 1 to 5; got "6"$/,
    );
    expect(() => busSettings({ CP_LOG_LEVEL: 'loud' })).toThrow(
      /^CP_LOG_LEVEL must be one of fatal/,
    );
    expect(() => busSettings({ NATS_CERT: '/c.pem' })).toThrow(
      /NATS_CERT and NATS_KEY go together/,
    );
  });
});

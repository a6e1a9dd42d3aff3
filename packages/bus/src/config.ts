import { defineEnv, envEnum, envIntType, envString, envText, loadEnv } from '@computepods/protocol';
import type { ConnectOptions } from './connect.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * What every program connecting to NATS reads (services, cpctrl, inotify2nats): declared here
 * once, listed in this package's README (pnpm env-docs), read nowhere else.
 */
export const busEnv = defineEnv({
  NATS_URL: {
    schema: envString(),
    default: 'nats://127.0.0.1:4222',
    doc: 'NATS server(s), comma-separated',
  },
  NATS_CREDS: {
    schema: envText(),
    doc: "NATS credentials file (the role's; `up` gives each service its own)",
  },
  NATS_CA: { schema: envText(), doc: "TLS: the CA that signed the servers' certificates (file)" },
  NATS_CERT: {
    schema: envText(),
    doc: 'TLS: a client certificate (file), with NATS_KEY, when the server asks for one',
  },
  NATS_KEY: { schema: envText(), doc: "TLS: the client certificate's key (file)" },
  CP_LOG_LEVEL: {
    schema: envEnum(LEVELS).optional(),
    shown: '`LOG_LEVEL`, else `info`',
    doc: 'pino level; logs are JSON on stderr, pretty on a terminal',
  },
  LOG_LEVEL: { schema: envEnum(LEVELS), default: 'info', doc: 'CP_LOG_LEVEL when that is unset' },
  CP_LOG_FORMAT: {
    schema: envEnum(['json', 'pretty']).optional(),
    shown: 'pretty on a terminal',
    doc: '`json`: JSON log lines on stderr even on a terminal',
  },
  CP_REPLICAS: {
    schema: envIntType({ max: 5 }),
    default: '1',
    doc: 'JetStream replicas for streams and buckets (3 on a cluster)',
  },
});

export interface BusSettings {
  readonly servers: string;
  readonly credsFile: string | undefined;
  readonly tls: ConnectOptions['tls'];
  readonly logLevel: (typeof LEVELS)[number];
  /** JSON lines even on a terminal. */
  readonly json: boolean;
  readonly replicas: number;
}

/** The connection's and logs' settings; a bad value throws InvalidEnvError naming it. */
export function busSettings(env: NodeJS.ProcessEnv = process.env): BusSettings {
  const e = loadEnv(busEnv, env);
  if (Boolean(e.NATS_CERT) !== Boolean(e.NATS_KEY))
    throw new Error(
      'NATS_CERT and NATS_KEY go together: set both for a client certificate, or neither',
    );
  const tls =
    e.NATS_CA || e.NATS_CERT || e.NATS_KEY
      ? {
          ...(e.NATS_CA ? { caFile: e.NATS_CA } : {}),
          ...(e.NATS_CERT ? { certFile: e.NATS_CERT } : {}),
          ...(e.NATS_KEY ? { keyFile: e.NATS_KEY } : {}),
        }
      : undefined;
  return {
    servers: e.NATS_URL,
    credsFile: e.NATS_CREDS,
    tls,
    logLevel: e.CP_LOG_LEVEL ?? e.LOG_LEVEL,
    json: e.CP_LOG_FORMAT === 'json',
    replicas: e.CP_REPLICAS,
  };
}

/** TLS settings from the environment: NATS_CA, NATS_CERT and NATS_KEY (files). */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectOptions['tls'] {
  return busSettings(env).tls;
}

/** Replicas for streams and buckets: 1 on one server, 3 on a cluster (CP_REPLICAS). */
export function defaultReplicas(env: NodeJS.ProcessEnv = process.env): number {
  return busSettings(env).replicas;
}

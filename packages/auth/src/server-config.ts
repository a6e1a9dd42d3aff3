import { join } from 'node:path';
import type { AuthStore } from './store.js';

/**
 * The nats-server configuration lines for operator mode: the operator JWT, the system account,
 * and the full (NATS-based) resolver, which keeps account JWTs in its own directory and takes
 * new ones at run time (`$SYS.REQ.CLAIMS.UPDATE`), so a project is added without a restart.
 * Every account made so far is preloaded, so a fresh store directory needs no push.
 */
export function serverConfigLines(store: AuthStore, resolverDir: string): string[] {
  const preload = [...store.accountJwts()].map(([key, jwt]) => `  ${key}: ${JSON.stringify(jwt)}`);
  return [
    // A user JWT carries its permissions, and a service's list is longer than the default
    // 4 KiB CONNECT line allows: a server of ours must take 64 KiB.
    'max_control_line: 65536',
    `operator: ${JSON.stringify(join(store.dir, 'operator.jwt'))}`,
    `system_account: ${store.systemAccountKey}`,
    `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m" }`,
    'resolver_preload: {',
    ...preload,
    '}',
  ];
}

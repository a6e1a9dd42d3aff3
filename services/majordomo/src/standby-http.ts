import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bus } from '@computepods/bus';
import { Access, AccessError } from './access.js';
import { allowedHosts, hostAllowed } from './allowed-hosts.js';
import type { MajorDomoConfig } from './config.js';
import type { LeaderRecord } from './lease.js';

/**
 * A standby MajorDomo's REST port: it serves nothing of its own (its state would be as old as
 * its last restore, and a build asked of it would go nowhere), so every route answers 503
 * `CP_STANDBY` naming the leader (id, epoch and REST address) with `Retry-After: 1`, to a caller
 * the leader would let in (Host allowlist and token, as on the leader). GET /healthz answers
 * 200 `{ok: true, standby: true}` without a token: the process is alive and ready to take over.
 * Closed when this MajorDomo takes the lease; the full API then listens on the same address.
 */
export async function startStandbyHttp(
  bus: Bus,
  cfg: MajorDomoConfig,
  token: string,
  leader: () => LeaderRecord | undefined,
): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const access = await Access.start(bus, cfg.project, token);
  let hosts = new Set<string>();
  const send = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      ...(status === 503 ? { 'retry-after': '1' } : {}),
    });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz')
      return send(res, 200, { ok: true, standby: true });
    if (!hostAllowed(hosts, req.headers.host))
      return send(res, 421, {
        error: { code: 'CP_HOST_NOT_ALLOWED', message: 'this API does not answer for this Host' },
      });
    try {
      access.authenticate(/^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1]);
    } catch (err) {
      const e = err as AccessError;
      if (!(e instanceof AccessError)) throw err;
      return send(res, e.status, { error: { code: e.code, message: e.message } });
    }
    const l = leader();
    send(res, 503, {
      error: {
        code: 'CP_STANDBY',
        message: l
          ? `this MajorDomo is a standby; the leader of project ${cfg.project} is ${l.holder} (epoch ${l.epoch})${l.url ? ` at ${l.url}` : ''}: ask it`
          : `this MajorDomo is a standby and project ${cfg.project} has no leader yet: try again in a moment`,
      },
      leader: l ? { id: l.holder, epoch: l.epoch, url: l.url ?? null } : null,
    });
    // The body is not read: drained so the connection can be reused.
    req.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.httpPort, cfg.httpHost, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  hosts = allowedHosts(cfg.httpHost, port, cfg.httpAllowedHosts);
  return {
    server,
    url: `http://${cfg.httpHost}:${port}`,
    close: async () => {
      access.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

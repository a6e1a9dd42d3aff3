import { fileURLToPath } from 'node:url';
import { Bus, quietLogger } from '@computepods/bus';
import { envelope, subjects } from '@computepods/protocol';
import { NatsServer, runCommand, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

/** cpctrl as its users run it: its bundle while fresh, else its sources (bin/cpctrl.js). */
const main = fileURLToPath(new URL('../bin/cpctrl.js', import.meta.url));
const P = 'cpbuild';

/**
 * `cpctrl build` (a process) against a real nats-server, this test playing MajorDomo: what is
 * published on the project's artefact-state subject while it waits is validated; one message
 * that is not a state change is skipped, not the end of the watch.
 */
describe('cpctrl build, waiting for the artefact', { timeout: 120_000 }, () => {
  let nats: NatsServer;
  let md: Bus;
  const dir = new TempDir('cp-cpctrl-build-');

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('majordomo');
    md = await Bus.connect({ servers: nats.url, service: 'majordomo', project: P, logger });
  });
  afterAll(async () => {
    await md?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('skips what is not a state change and ends when the artefact is up to date', async () => {
    const rec = (path: string, status: string) => ({
      path,
      status,
      sha256: null,
      size: null,
      updated: new Date().toISOString(),
    });
    const records = (...records: ReturnType<typeof rec>[]) =>
      JSON.stringify(envelope('artefact.states', { records }, { project: P, source: 'majordomo' }));
    md.serve('build', z.object({ path: z.string() }), async (req) => {
      // cpctrl subscribed before it asked: all of this reaches its watch, in this order.
      const states = subjects.artefactState(P);
      md.nc.publish(states, 'not json');
      md.nc.publish(states, '{"v": 1}');
      md.nc.publish(states, records(rec('out/dep', 'queued'), rec('out/dep', 'up_to_date')));
      // The artefact's end in a turn's message after another path's change.
      md.nc.publish(states, records(rec('out/dep2', 'up_to_date'), rec(req.path, 'up_to_date')));
      return { path: req.path, accepted: true, status: 'queued', message: '' };
    });
    await md.nc.flush();
    const { CP_PROJECT: _p, NATS_CREDS: _c, CPCTRL_OUTPUT: _o, ...inherited } = process.env;
    const res = await runCommand(
      process.execPath,
      [main, '--project', P, 'build', 'out/a', '--timeout', '60'],
      {
        env: {
          ...inherited,
          NATS_URL: nats.url,
          CP_AUTH_DIR: dir.join('no-auth'),
          CPCTRL_CONFIG: dir.join('cpctrl.json'),
        },
      },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('out/a: up_to_date\n');
  });
});

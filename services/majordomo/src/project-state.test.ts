import { RemoteError } from '@computepods/bus';
import { buckets, Project, subjects } from '@computepods/protocol';
import { until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { serveApi } from './api.js';
import { startHttp } from './http.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'paused';
const TOKEN = 'project-state-test-token-0123456789';
const INACTIVE = `project "${P}" is inactive: an admin re-activates it with cpctrl project update ${P} --active true`;

/**
 * An inactive project (its record in `cp_<p>_config`, as `cpctrl project update --active false`
 * writes it) refuses build requests and records file changes without dispatching builds; its
 * history stays readable, and re-activated it builds what waited. The chef is played by hand.
 */
describe('MajorDomo and an inactive project, over a real nats-server', () => {
  const t = new TestMajorDomo(P);
  const requests = t.requests;
  let seq = 0;

  const files = (path: string, content: string) =>
    t.bus.publish(
      'files.changed',
      subjects.filesChanged(P, POD),
      {
        pod: POD,
        events: [
          {
            kind: 'changed',
            path,
            size: content.length,
            mtimeNs: String(++seq),
            sha256: sha(content),
          },
        ],
      },
      { msgId: `files-${seq}` },
    );
  const record = async (path: string) => (await (await t.artefacts()).get(path))?.value;
  const recorded = (path: string, content: string) =>
    until(async () => (await record(path))?.sha256 === sha(content), `${path} recorded`);
  const setProject = async (active: boolean | 'deleted') => {
    const kv = await t.bus.kv(buckets.config(P), Project, { history: 5 });
    if (active === 'deleted') return kv.delete('project');
    const now = new Date().toISOString();
    await kv.put('project', {
      name: P,
      active,
      members: [{ user: 'alice', role: 'admin' }],
      created: now,
      updated: now,
    });
  };
  const build = (path: string) =>
    t.bus.request('build', { path, force: false }, z.object({ status: z.string() }));

  beforeAll(async () => {
    await t.open();
    await setProject(false);
    const md = await t.start();
    serveApi(t.mdBus, md);
    // The API's SUBs reach the server before the test asks on its own connection: unflushed,
    // the first request could find no responder (CP_UNAVAILABLE, not CP_PROJECT_INACTIVE).
    await t.mdBus.nc.flush();
  }, 60_000);
  afterAll(() => t.close());

  it('refuses builds and records changes without dispatching while inactive; builds them once re-activated', async () => {
    const state = t.md.projectState;
    expect(state?.active).toBe(false);
    expect(state?.reason).toBe(INACTIVE);

    const refused = await build('out/a.up').then(
      () => undefined,
      (e: RemoteError) => e,
    );
    expect(refused).toBeInstanceOf(RemoteError);
    expect(refused).toMatchObject({ code: 'CP_PROJECT_INACTIVE', message: INACTIVE });
    // REST says the same: 409 (the project's state, not the request, is at fault).
    const http = await startHttp(t.mdBus, t.md, { host: '127.0.0.1', port: 0, token: TOKEN });
    try {
      const address = http.server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const res = await fetch(`http://127.0.0.1:${port}/api/builds`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ path: 'out/a.up' }),
      });
      expect(res.status).toBe(409);
      expect(await res.json()).toEqual({
        error: { code: 'CP_PROJECT_INACTIVE', message: INACTIVE },
      });
    } finally {
      await http.close();
    }

    // The change is recorded (history stays readable) but nothing is dispatched. A second change,
    // handled after the first (one consumer, in order), marks the first one as fully handled.
    await files('src/a.txt', 'one');
    await files('notes/marker', 'm');
    await recorded('notes/marker', 'm');
    expect((await record('src/a.txt'))?.sha256).toBe(sha('one'));
    expect(requests).toEqual([]);
    const history = await t.bus.request('artefact', { path: 'src/a.txt' }, z.unknown());
    expect(history).toMatchObject({ artefact: { path: 'src/a.txt', sha256: sha('one') } });

    await setProject(true);
    await until(() => requests.length === 1, 'the build that waited dispatched on re-activation');
    expect(requests[0]).toMatchObject({ taskId: 'up:a', inputs: { 'src/a.txt': sha('one') } });
    expect(state?.active).toBe(true);
    expect((await build('out/a.up')).status).toBeDefined();

    await setProject('deleted');
    await until(() => state?.active === false, 'a deleted project refusing builds');
    await expect(build('out/a.up')).rejects.toThrow(/was deleted/);
  });
});

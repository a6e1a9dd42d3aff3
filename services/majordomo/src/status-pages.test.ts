import {
  type ArtefactRecord,
  StatusReply,
  statusWithAllArtefacts,
  subjects,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from './api.js';
import { startHttp } from './http.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'pages';
const TOKEN = 'status-pages-test-token-0123456789';
const N = 1_200;

/**
 * `status` is a summary unless the records are asked for, then one page of them by path: at
 * 100,000 artefacts the whole list was 28 MB per call. The summary's counts are kept as records
 * change (here checked against a count of the records after a restore, an edit and a build), and
 * the pages, over NATS and REST, give every record once, in order, with a prefix too.
 */
describe('MajorDomo status: a summary, and the artefact records page by page', () => {
  const t = new TestMajorDomo(P);
  const requests = t.requests;
  let http: FastifyInstance | undefined;

  const ask = (req: object) => t.bus.request('status', req, StatusReply);
  const rest = async (query: string) => {
    const address = http?.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const res = await fetch(`http://127.0.0.1:${port}/api/status${query}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return { code: res.status, body: (await res.json()) as unknown };
  };
  /** The counts a summary must give: a pass over every record (what it must not cost). */
  const counted = (records: ArtefactRecord[]) => {
    const by: Record<string, number> = {};
    for (const r of records) by[r.status] = (by[r.status] ?? 0) + 1;
    return by;
  };
  const canonical = (o: object) => JSON.stringify(Object.entries(o).sort());

  beforeAll(async () => {
    await t.open();
    const artefacts = await t.artefacts();
    const updated = new Date().toISOString();
    // Sources with odd names for the order (upper case sorts before lower case, '~' after).
    const names = Array.from({ length: N }, (_, i) =>
      i % 3 === 0 ? `src/A${i}.txt` : i % 3 === 1 ? `src/b${i}.txt` : `src/~${i}.txt`,
    );
    await Promise.all(
      names.map((path) =>
        artefacts.put(path, {
          path,
          status: 'source',
          sha256: sha(path),
          size: 1,
          pods: [POD],
          updated,
        }),
      ),
    );
    // Four builds of one step each in flight (no groups: the counts are per build here).
    const md = await t.start({ CP_PARALLEL_BUILDS: '4', CP_GROUP_BUILDS: '1' });
    serveApi(t.mdBus, md);
    http = await startHttp(t.mdBus, md, { host: '127.0.0.1', port: 0, token: TOKEN });
  }, 120_000);
  afterAll(async () => {
    await http?.close();
    await t.close();
  });

  it('answers a summary by default, whose counts follow the records as they change', async () => {
    const first = await ask({});
    expect(first.artefacts).toEqual([]);
    expect(first.queued).toEqual([]);
    expect(first.next).toBeUndefined();
    const all = await statusWithAllArtefacts(ask, { pageSize: 500 });
    // Each source has a task (rule up): N outputs planned, 4 in flight, the rest queued.
    expect(first.summary.artefacts).toBe(all.artefacts.length);
    expect(first.summary.byStatus).toEqual(counted(all.artefacts));
    expect(first.summary.running).toBe(4);
    expect(first.summary.queued).toBe(N - 4);
    expect(all.queued).toHaveLength(N - 4);

    // A build's result: its output up to date, the next task in flight.
    const req = await untilDefined('a request', async () => requests[0]);
    await t.bus.publish('build.result', subjects.buildResult(P), {
      buildId: req.buildId,
      taskId: req.taskId,
      chef: 'gen',
      pod: POD,
      status: 'succeeded',
      outputs: { [req.outputs[0] ?? '']: { sha256: sha('out'), size: 3 } },
      cutoff: { [req.outputs[0] ?? '']: sha('out') },
      durationMs: 1,
    });
    // Once the next build is in flight and its records written, the counts match a count again
    // (a summary that drifted from the records would never match: the wait would time out).
    const after = await untilDefined('the result applied and counted', async () => {
      const s = await ask({});
      if (s.summary.byStatus.up_to_date !== 1 || s.summary.running !== 4) return undefined;
      const again = await statusWithAllArtefacts(ask);
      const now = await ask({});
      const same = canonical(now.summary) === canonical(s.summary);
      return same && canonical(s.summary.byStatus) === canonical(counted(again.artefacts))
        ? s
        : undefined;
    });
    expect(after.summary.queued).toBe(N - 5);
  });

  it('pages every record once, in order, over NATS and REST, with a prefix too', async () => {
    const all = await statusWithAllArtefacts(ask, { pageSize: 333 });
    const paths = all.artefacts.map((a) => a.path);
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths).toEqual([...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(paths.length).toBe(all.summary.artefacts);

    const page = await ask({ artefacts: true, limit: 100 });
    expect(page.artefacts.map((a) => a.path)).toEqual(paths.slice(0, 100));
    expect(page.next).toBe(paths[99]);
    const second = await ask({ artefacts: true, limit: 100, cursor: page.next });
    expect(second.artefacts.map((a) => a.path)).toEqual(paths.slice(100, 200));

    const under = await statusWithAllArtefacts(ask, { prefix: 'src/b', pageSize: 50 });
    expect(under.artefacts.map((a) => a.path)).toEqual(paths.filter((p) => p.startsWith('src/b')));

    const r = await rest(`?artefacts=true&limit=100&cursor=${encodeURIComponent(paths[99] ?? '')}`);
    expect(r.code).toBe(200);
    const viaRest = StatusReply.parse(r.body);
    expect(viaRest.artefacts.map((a) => a.path)).toEqual(paths.slice(100, 200));
    const summary = StatusReply.parse((await rest('')).body);
    expect(summary.artefacts).toEqual([]);
    expect(summary.summary.artefacts).toBe(paths.length);
    const bad = await rest('?limit=0');
    expect(bad.code).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('limit');
    // /openapi.json describes the query and the answer.
    const address = http?.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const doc = (await (
      await fetch(`http://127.0.0.1:${port}/openapi.json`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
    ).json()) as {
      paths: Record<string, { get?: { parameters?: { name: string }[]; responses?: object } }>;
    };
    const op = doc.paths['/api/status']?.get;
    expect(op?.parameters?.map((p) => p.name).sort()).toEqual([
      'artefacts',
      'cursor',
      'limit',
      'prefix',
    ]);
    expect(JSON.stringify(op?.responses)).toContain('summary');
    // A bad limit over NATS names its field too.
    await expect(ask({ artefacts: true, limit: 100_000 })).rejects.toThrow(/limit/);
  });
});

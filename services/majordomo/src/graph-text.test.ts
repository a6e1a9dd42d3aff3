import { JsonText } from '@computepods/bus';
import { GraphReply, subjects } from '@computepods/protocol';
import { until } from '@computepods/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from './api.js';
import { GraphText } from './graph-text.js';
import { startHttp } from './http.js';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'graphtext';
const TOKEN = 'graph-text-test-token-0123456789abcdef';
const SOURCES = 2_000;
const PARALLEL = 16;

/**
 * The graph's JSON is made once per graph version (graph-text.ts) and served from it over REST and
 * NATS: the bytes are those of JSON.stringify(dm.toJSON()), the same text is given while nothing
 * changes, and a change is in the next answer.
 */
describe('the graph answer, kept per graph version (real nats-server)', () => {
  const t = new TestMajorDomo(P);
  let http: FastifyInstance | undefined;

  const restGraph = async () => {
    const address = http?.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const res = await fetch(`http://127.0.0.1:${port}/api/graph`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    return res.text();
  };
  const announce = (paths: string[], tag: string) =>
    t.bus.publish(
      'files.changed',
      subjects.filesChanged(P, POD),
      {
        pod: POD,
        events: paths.map((path, i) => ({
          kind: 'changed' as const,
          path,
          size: 1,
          mtimeNs: String(i + 1),
          sha256: sha(`${path} ${tag}`),
        })),
      },
      { msgId: `graph-text-${tag}` },
    );

  beforeAll(async () => {
    await t.open();
    // A step a build (no groups): PARALLEL steps in flight, the rest waiting.
    const md = await t.start({ CP_PARALLEL_BUILDS: String(PARALLEL), CP_GROUP_BUILDS: '1' });
    serveApi(t.mdBus, md);
    http = await startHttp(t.mdBus, md, { host: '127.0.0.1', port: 0, token: TOKEN });
    const paths = Array.from({ length: SOURCES }, (_, i) => `src/d${i % 20}/f${i}.txt`);
    await announce(paths, 'first');
    // As many builds as may run at once dispatched (the played chef answers none): nothing
    // changes the graph from then on but the file events below.
    await until(() => t.requests.length >= PARALLEL, 'the first builds requested');
    expect(md.inspect().dm.status().running.length).toBe(PARALLEL);
  }, 120_000);
  afterAll(async () => {
    await http?.close();
    await t.close();
  });

  it('answers the bytes of JSON.stringify(toJSON()), over REST and NATS, from one text per version', async () => {
    const { dm } = t.md.inspect();
    const expected = JSON.stringify(dm.toJSON());
    expect(expected.length).toBeGreaterThan(500_000);
    const text = t.md.queries.graph('json').graph;
    expect(text).toBeInstanceOf(JsonText);
    expect(await restGraph()).toBe(expected);
    const viaNats = await t.bus.request('graph', { format: 'json' }, GraphReply);
    expect(viaNats.graph).toEqual(JSON.parse(expected));
    // Nothing changed: the same text, not a new one.
    expect(t.md.queries.graph('json').graph).toBe(text);
    expect(await restGraph()).toBe(expected);
  });

  it('gives a change in the next answer', async () => {
    const before = t.md.queries.graph('json').graph;
    const version = t.md.inspect().dm.version;
    // A source of a task that waits (not running): changed, it waits still; no build is sent.
    const status = t.md.inspect().dm.status();
    const waiting = status.dirty.find((id) => !status.running.includes(id));
    const source = `src/${waiting?.slice('up:'.length)}.txt`;
    await announce([source, 'src/new/n.txt'], 'second');
    await until(() => t.md.inspect().dm.version !== version, 'the change applied');
    const after = await restGraph();
    expect(after).toBe(JSON.stringify(t.md.inspect().dm.toJSON()));
    expect(after).toContain(`"path":"src/new/n.txt","hash":"${sha('src/new/n.txt second')}"`);
    expect(after).toContain(`"path":"${source}","hash":"${sha(`${source} second`)}"`);
    expect(t.requests.length).toBe(PARALLEL);
    expect(t.md.queries.graph('json').graph).not.toBe(before);
  });

  it('lets the text go a while after its last read', async () => {
    const text = new GraphText(t.md.inspect().dm, 50);
    const first = text.get();
    expect(text.held).toBe(true);
    expect(text.get()).toBe(first);
    await until(() => !text.held, 'the text let go');
    const again = text.get();
    expect(again).not.toBe(first);
    expect(again.pieces.join('')).toBe(first.pieces.join(''));
  });
});

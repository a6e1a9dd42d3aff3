import { ArtefactReply, CancelReply, GraphReply, WhyReply } from '@computepods/protocol';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from './api.js';
import { startHttp } from './http.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'queries';
const TOKEN = 'queries-test-token-0123456789abcdef';

/**
 * REST and the NATS API answer through one facade (queries.ts): the same artefact detail, the
 * same why and graph, and an unknown artefact or build refused with the same code, field and
 * words over both (they were written twice, and REST's why answered [] for any path).
 */
describe('MajorDomo answers REST and the NATS API alike', () => {
  const t = new TestMajorDomo(P);
  let http: FastifyInstance | undefined;

  const rest = async (method: string, path: string) => {
    const address = http?.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return { code: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** The error a NATS request is answered with: its code, field and message. */
  const refusal = async (verb: string, req: object) => {
    try {
      await t.bus.request(verb, req, ArtefactReply);
    } catch (err) {
      const e = err as { code?: string; field?: string; message: string };
      return { code: e.code, field: e.field, message: e.message };
    }
    throw new Error(`${verb} was answered`);
  };

  beforeAll(async () => {
    await t.open();
    const artefacts = await t.artefacts();
    await artefacts.put('src/a.txt', {
      path: 'src/a.txt',
      status: 'source',
      sha256: 'a'.repeat(64),
      size: 1,
      pods: ['pod-a'],
      updated: new Date().toISOString(),
    });
    const md = await t.start();
    serveApi(t.mdBus, md);
    http = await startHttp(t.mdBus, md, { host: '127.0.0.1', port: 0, token: TOKEN });
  }, 120_000);
  afterAll(async () => {
    await http?.close();
    await t.close();
  });

  it('gives the same artefact detail, why and graph over both', async () => {
    const viaNats = await t.bus.request('artefact', { path: 'src/a.txt' }, ArtefactReply);
    const viaRest = await rest('GET', '/api/artefact?path=src/a.txt');
    expect(viaRest.code).toBe(200);
    expect(viaRest.body).toEqual(JSON.parse(JSON.stringify(viaNats)));
    expect(viaNats.artefact.status).toBe('source');

    const why = await t.bus.request('why', { path: 'out/a.up' }, WhyReply);
    expect((await rest('GET', '/api/why?path=out/a.up')).body).toEqual(why);

    const graph = await t.bus.request('graph', { format: 'json' }, GraphReply);
    expect((await rest('GET', '/api/graph')).body).toEqual(graph.graph);
  });

  it('refuses an unknown artefact with the same code, field and words over both', async () => {
    for (const verb of ['artefact', 'why'] as const) {
      const viaNats = await refusal(verb, { path: 'out/none.up' });
      const viaRest = await rest('GET', `/api/${verb}?path=out/none.up`);
      expect(viaNats, verb).toMatchObject({ code: 'CP_UNKNOWN_ARTEFACT', field: 'path' });
      expect(viaRest.code, verb).toBe(404);
      expect(viaRest.body.error, verb).toEqual({
        code: 'CP_UNKNOWN_ARTEFACT',
        field: 'path',
        message: viaNats.message,
      });
      expect(viaNats.message).toMatch(/^no artefact out\/none\.up; .*cpctrl artefact list/);
    }
  });

  it('refuses a cancel of a task with no build in flight, naming the task', async () => {
    const viaNats = await t.bus.request('cancel', { taskId: 'up:src/none.txt' }, CancelReply);
    expect(viaNats).toEqual({ taskId: 'up:src/none.txt', cancelled: false });
    const viaRest = await rest('DELETE', `/api/builds/${encodeURIComponent('up:src/none.txt')}`);
    expect(viaRest.code).toBe(404);
    expect(viaRest.body.error).toMatchObject({ code: 'CP_UNKNOWN_BUILD', field: 'taskId' });
    expect((viaRest.body.error as { message: string }).message).toMatch(
      /^no build in flight for task up:src\/none\.txt; .*cpctrl builds/,
    );
  });
});

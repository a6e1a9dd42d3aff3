import { envelope, subjects } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';

const P = 'chunktest';
const Big = z.object({ rows: z.array(z.object({ path: z.string(), n: z.number() })) });

describe('API answers bigger than the server max payload (a real nats-server, 64 KB)', () => {
  let nats: NatsServer;
  let server: Bus;
  let client: Bus;
  const logger = quietLogger('chunk-test');
  let rows: z.infer<typeof Big>['rows'] = [];
  let calls = 0;

  beforeAll(async () => {
    // Later lines win over the test kit's own 8 MB.
    nats = await NatsServer.start({ configLines: () => ['max_payload: 65536'] });
    const connect = (service: string) =>
      Bus.connect({ servers: nats.url, service, project: P, logger, discoverable: false });
    server = await connect('answers');
    client = await connect('asks');
    server.serve('big', z.object({ n: z.number().int().min(0) }), async ({ n }) => {
      calls++;
      return { rows: rows.slice(0, n) };
    });
    await server.nc.flush();
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('a result over the max payload arrives whole, in parts, validated', async () => {
    expect(client.nc.info?.max_payload).toBe(65536);
    // Paths in other scripts and with quotes: their JSON costs more bytes than chars.
    rows = Array.from({ length: 6000 }, (_, i) => ({
      path: i % 3 === 0 ? `src/ünïcødé/"q"\\${i}/日本語.c` : `src/dir${i % 50}/file${i}.c`,
      n: i,
    }));
    const bytes = JSON.stringify({ rows }).length;
    expect(bytes).toBeGreaterThan(3 * 65536);
    const got = await client.request('big', { n: rows.length }, Big);
    expect(got.rows).toEqual(rows);
    // A small one is one message, as before.
    expect((await client.request('big', { n: 3 }, Big)).rows).toEqual(rows.slice(0, 3));
  });

  it('the parts are of one answer: the handler runs once, whatever the number of parts', async () => {
    rows = Array.from({ length: 6000 }, (_, i) => ({ path: `a/${i}`, n: i }));
    const before = calls;
    expect((await client.request('big', { n: 6000 }, Big)).rows).toEqual(rows);
    expect(calls - before).toBe(1);
  });

  it('a part asked for with a bad id is refused naming the field; an unknown one is gone', async () => {
    const ask = async (body: unknown) => {
      rows = Array.from({ length: 6000 }, (_, i) => ({ path: `c/${i}`, n: i }));
      // The instance comes from a real chunked answer.
      const raw = await client.nc.request(
        subjects.api(P, 'big'),
        JSON.stringify(envelope('api.big', { n: 6000 }, { project: P, source: 'asks' })),
      );
      const instance = (raw.json() as { body: { chunked: { instance: string } } }).body.chunked
        .instance;
      const reply = await client.nc.request(
        subjects.apiChunk(P, instance),
        JSON.stringify(envelope('api.chunk', body, { project: P, source: 'asks' })),
      );
      return (reply.json() as { body: { ok: boolean; error?: { code: string; field?: string } } })
        .body;
    };
    const bad = await ask({ id: '../../etc/passwd', part: 0 });
    expect(bad.ok).toBe(false);
    expect(bad.error).toMatchObject({ code: 'CP_MESSAGE_INVALID', field: 'id' });
    const gone = await ask({ id: 'f'.repeat(24), part: 0 });
    expect(gone.error?.code).toBe('CP_NOT_FOUND');
  });
});

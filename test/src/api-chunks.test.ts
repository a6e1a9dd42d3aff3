import { Bus, quietLogger } from '@computepods/bus';
import { ArtefactRecord, StatusReply, StatusRequest } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const P = 'chunks';

/**
 * A status bigger than the server's max payload (64 KB here; 1 MB by default, ~3,500 artefacts)
 * read in parts with the least-privilege credentials of operator mode: MajorDomo's role answers,
 * a viewer asks (its only extra right: publishing to cp.<p>.api.chunk.*).
 */
describe('API answers in parts, operator mode', () => {
  let stack: Stack;
  let md: Bus;
  let viewer: Bus;
  const logger = quietLogger('api-chunks');
  const artefacts = Array.from({ length: 2000 }, (_, i) =>
    ArtefactRecord.parse({
      path: `src/m${i % 40}/file-${i}.c`,
      status: 'up_to_date',
      sha256: (i % 16).toString(16).repeat(64),
      size: i,
      updated: new Date(0).toISOString(),
    }),
  );

  beforeAll(async () => {
    stack = await Stack.start(P, { natsConfigLines: ['max_payload: 65536'] });
    const as = async (role: 'majordomo' | 'viewer', scope?: string) =>
      Bus.connect({
        servers: stack.nats.url,
        credsFile: await stack.creds({ role, ...(scope ? { scope } : {}) }),
        service: role,
        project: P,
        logger,
        discoverable: false,
      });
    md = await as('majordomo');
    viewer = await as('viewer', 'ann');
    md.serve('status', StatusRequest, async () => ({
      project: P,
      idle: true,
      summary: { artefacts: artefacts.length, byStatus: {}, running: 0, queued: 0 },
      artefacts,
      running: [],
      queued: [],
      nonConvergent: [],
    }));
    await md.nc.flush();
  }, 60_000);
  afterAll(async () => {
    await viewer?.close();
    await md?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('a viewer reads a status of several max payloads whole', async () => {
    expect(JSON.stringify(artefacts).length).toBeGreaterThan(3 * 65536);
    const status = await viewer.request('status', {}, StatusReply);
    expect(status.artefacts).toEqual(artefacts);
  });
});

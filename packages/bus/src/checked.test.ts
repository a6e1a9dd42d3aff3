import { BuildResult, messageTypes, streams, subjects } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { MessageInvalidError } from './errors.js';
import { createLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';

const P = 'checked';
const result = (buildId: string) => ({
  buildId,
  taskId: `t-${buildId}`,
  chef: 'c1',
  pod: 'p1',
  status: 'succeeded' as const,
  outputs: { 'out/a.o': { sha256: 'a'.repeat(64), size: 3 } },
  durationMs: 5,
});

describe('a value checked once for a put and a publish (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = createLogger('checked-test');
  logger.level = 'silent';

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('is parsed once, frozen, then put and published as it is, and reads back equal', async () => {
    const kv = await bus.kv('cp_checked_builds_a', BuildResult);
    expect(messageTypes['build.result']).toBe(BuildResult);
    const parse = vi.spyOn(BuildResult, 'safeParse');
    const valid = bus.checked('build.result', result('b1'));
    expect(parse).toHaveBeenCalledTimes(1);
    expect(valid.discovered).toEqual([]); // defaults filled
    expect(Object.isFrozen(valid) && Object.isFrozen(valid.outputs)).toBe(true);
    expect(Object.isFrozen(valid.outputs['out/a.o'])).toBe(true);
    expect(() => {
      (valid as { status: string }).status = 'bogus';
    }).toThrow(TypeError);
    await kv.put('b1', valid);
    const ack = await bus.publish('build.result', subjects.buildResult(P), valid);
    expect(parse).toHaveBeenCalledTimes(1); // neither the put nor the publish parsed it again
    expect((await kv.get('b1'))?.value).toEqual(valid);
    const msg = await bus.jsm.streams.getMessage(streams.events(P), { seq: ack.seq });
    expect(msg?.json<{ body: unknown }>().body).toEqual(valid);
  });

  it('anything else is parsed at every write: a copy, an unchecked value, another schema', async () => {
    const kv = await bus.kv('cp_checked_builds_b', BuildResult);
    const valid = bus.checked('build.result', result('b2'));
    const parse = vi.spyOn(BuildResult, 'safeParse');
    // A copy of a checked value is not the checked value: changed into something invalid, refused.
    const copy = { ...valid, status: 'bogus' } as unknown as z.input<typeof BuildResult>;
    await expect(async () => kv.put('b2', copy)).rejects.toThrow(MessageInvalidError);
    await expect(bus.publish('build.result', subjects.buildResult(P), copy)).rejects.toThrow(
      /refusing to send an invalid build.result/,
    );
    await kv.put('b2', result('b2'));
    expect(parse).toHaveBeenCalledTimes(3);
    // Checked against another schema of the same shape: parsed by this bucket's own schema.
    const Other = BuildResult.extend({ durationMs: z.number().max(1) });
    const other = await bus.kv('cp_checked_builds_c', Other);
    await expect(async () => other.put('b2', valid)).rejects.toThrow(
      /refusing to store an invalid value/,
    );
  });

  it('an invalid body is refused by checked() with the field named', () => {
    expect(() => bus.checked('build.result', { ...result('b3'), durationMs: -1 } as never)).toThrow(
      MessageInvalidError,
    );
    try {
      bus.checked('build.result', { ...result('b3'), durationMs: -1 } as never);
    } catch (err) {
      expect((err as MessageInvalidError).issues.map((i) => i.path)).toEqual(['body.durationMs']);
    }
  });
});

import { Bus, ensureProjectStreams } from '@computepods/bus';
import { buckets, RulesDeclared } from '@computepods/protocol';
import { jsonLines, NatsServer, untilDefined } from '@computepods/testkit';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchChefReplicas } from './chef-replicas.js';
import { type Replica, watchReplicas } from './replica-census.js';

const P = 'census';

/**
 * The replica census over a real nats-server: instances are followed by their answers to
 * `$SRV.PING.<service>` (played here by a plain subscription answering as a micro service does)
 * and by their declarations; one that stops answering for the grace is reported gone, once, with
 * what was known of it. A fresh-clone CI run and a loop of replicas.test caught a chef replica
 * killed -9 during MajorDomo's first census round never reported: its one answer had come
 * before it named its chef (metadata set after connecting), that answer replaced what its
 * declaration said, and chef-replicas' onGone returned silently without a chef name.
 */
describe('replica census', () => {
  let nats: NatsServer;
  let bus: Bus;
  /** The instances' own connection. */
  let other: Bus;
  const log = jsonLines();
  const logs = log.lines;

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({
      servers: nats.url,
      service: 'majordomo',
      project: P,
      logger: pino({ level: 'info' }, log.stream),
    });
    await ensureProjectStreams(bus, P);
    other = await Bus.connect({
      servers: nats.url,
      service: 'player',
      project: P,
      logger: pino({ level: 'silent' }),
    });
  });
  afterAll(async () => {
    await other?.close();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  /** Answers `$SRV.PING.chef` as instance `id` with `metadata`, until stopped. */
  const answer = async (id: string, metadata: Record<string, string>) => {
    const sub = other.nc.subscribe('$SRV.PING.chef', {
      callback: (_e, m) => {
        m.respond(JSON.stringify({ name: 'chef', id, metadata }));
      },
    });
    await other.nc.flush();
    return () => sub.unsubscribe();
  };

  it('keeps what a declaration said of an instance whose answers say less', async () => {
    const gone: Replica[] = [];
    const census = watchReplicas(bus, {
      service: 'chef',
      graceMs: 1_000,
      onGone: (r) => void gone.push(r),
    });
    try {
      census.note({ id: 'early', metadata: { chef: 'copier' }, heardAt: new Date() });
      const stop = await answer('early', {});
      // Answered at least one round without its name, then silent: gone, the name kept.
      await untilDefined('a round heard it', async () =>
        logs.some((l) => l.msg === 'replica declared' && l.replica === 'early') ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 600));
      stop();
      await untilDefined('reported gone', async () => (gone.length > 0 ? true : undefined), 10_000);
      await new Promise((r) => setTimeout(r, 600));
      expect(gone.map((r) => [r.id, r.metadata])).toEqual([['early', { chef: 'copier' }]]);
    } finally {
      census.stop();
    }
  });

  it('hands on a declared chef replica gone after answering without its name; says so when no name is known', async () => {
    const rules = await bus.kv(buckets.rules(P), RulesDeclared);
    await rules.put('copier', {
      chef: 'copier',
      pod: 'pod-a',
      types: [],
      rules: [],
      srv: { name: 'chef', id: 'declared1' },
    });
    const stopWatch = await watchChefReplicas(bus, rules, 1_000);
    try {
      const stopDeclared = await answer('declared1', {});
      const stopNameless = await answer('nameless1', {});
      await untilDefined('both heard', async () =>
        logs.some((l) => l.msg === 'replica answering' && l.replica === 'nameless1')
          ? true
          : undefined,
      );
      await new Promise((r) => setTimeout(r, 600));
      stopDeclared();
      stopNameless();
      const handedOn = await untilDefined(
        'the declared replica reported gone',
        async () =>
          logs.find(
            (l) =>
              l.msg === 'chef replica stopped answering; the requests it held are handed out again',
          ),
        10_000,
      );
      expect(handedOn).toMatchObject({ chef: 'copier', replica: 'declared1', level: 40 });
      const nameless = await untilDefined(
        'the nameless replica reported gone',
        async () => logs.find((l) => l.msg.includes('it never named its chef')),
        10_000,
      );
      expect(nameless).toMatchObject({ replica: 'nameless1', level: 40 });
    } finally {
      stopWatch();
    }
  });
});

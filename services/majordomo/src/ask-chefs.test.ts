import { Socket } from 'node:net';
import { type Bus, ensureProjectStreams } from '@computepods/bus';
import { DeadLetter, Envelope, envelope, subjects } from '@computepods/protocol';
import { defined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askHowToBuild } from './ask-chefs.js';
import { TestMajorDomo } from './test-majordomo.js';

const P = 'ask';

/**
 * The socket under a nats.js connection (node transport): pausing it stands for a MajorDomo too
 * busy to read what the server already sent. Throws if nats.js no longer keeps it there.
 */
function socketOf(bus: Bus): Socket {
  const nc = bus.nc as unknown as { protocol?: { transport?: { socket?: unknown } } };
  const socket = nc.protocol?.transport?.socket;
  if (!(socket instanceof Socket)) throw new TypeError('no socket under this nats.js connection');
  return socket;
}

/**
 * The "how to build" scatter-gather over a real nats-server: answers already sent when the
 * deadline passes are read, every invalid one dead-lettered, also when MajorDomo was too busy to
 * read them before its deadline came (nats.js's requestMany dropped those unread).
 */
describe('askHowToBuild', () => {
  // No MajorDomo started, no chef played: MajorDomo's connection asks, a rogue chef answers.
  const t = new TestMajorDomo(P);
  let md: Bus;
  let chef: Bus;
  const letters: DeadLetter[] = [];

  beforeAll(async () => {
    await t.open({ chef: false });
    md = await t.connect('majordomo');
    chef = await t.connect('rogue');
    await ensureProjectStreams(md, P);
    md.nc.subscribe(`cp.${P}.dlq.*`, {
      callback: (_e, m) => {
        const env = Envelope.safeParse(m.json());
        const body = env.success ? DeadLetter.safeParse(env.data.body) : undefined;
        if (body?.success) letters.push(body.data);
      },
    });
  }, 60_000);
  afterAll(async () => {
    await chef?.close();
    await md?.close();
    await t.close();
  });

  it('reads and dead-letters an answer sent before the deadline though MajorDomo was busy past it', async () => {
    const garbage = '{"oops';
    const valid = (goal: string) => ({ goal, chef: 'text', pod: 'p', canBuild: false });
    const deadlineMs = 1_000;
    const held = socketOf(md);
    let deadlineAt = Number.POSITIVE_INFINITY;
    const sub = chef.nc.subscribe(subjects.howToBuild(P), {
      callback: (_e, m) => {
        const goal = (m.json() as { body: { goal: string } }).body.goal;
        m.respond(garbage);
        m.respond(
          JSON.stringify(
            envelope('rules.can_build_from', valid(goal), { project: P, source: 'text' }),
          ),
        );
        // Once the chef's round trip is back the server has routed both answers to MajorDomo's
        // connection, where they wait unread: MajorDomo reads again only after its deadline.
        // (A busy loop here, as before, did not order the two connections at the server: under
        // load it processed MajorDomo's flush before the chef's answers, and CI saw [].)
        void chef.nc.flush().then(() => {
          setTimeout(() => held.resume(), Math.max(0, deadlineAt + 50 - performance.now()));
        });
      },
    });
    // The chef's SUB goes out on another connection than MajorDomo's question: without this
    // flush the server can take the question first and answer "no responders" (CI saw []).
    await chef.nc.flush();
    held.pause();
    try {
      deadlineAt = performance.now() + deadlineMs;
      const answers = await askHowToBuild(
        md,
        { goal: 'fz/busy.goal', have: [] },
        { chefs: ['text', 'silent'], deadlineMs, cid: 'busy' },
      );
      expect(answers.map((a) => a.chef)).toEqual(['text']);
      for (let i = 0; i < 200 && !letters.some((l) => l.data === garbage); i++)
        await new Promise((r) => setTimeout(r, 25));
      const d = letters.find((l) => l.data === garbage);
      expect(d, JSON.stringify(letters)).toBeDefined();
      expect(defined(d, 'the letter').service).toBe('majordomo');
      expect(defined(d, 'the letter').subject).toMatch(/^_INBOX\./);
    } finally {
      held.resume();
      sub.unsubscribe();
      // Until the server has the UNSUB, the next test's question still has a listener here
      // (another connection: no order between the two), so no "no responders" comes back.
      await chef.nc.flush();
    }
  });

  it('ends at once when no chef listens', async () => {
    const answers = await askHowToBuild(
      md,
      { goal: 'fz/nobody.goal', have: [] },
      { chefs: ['text'], deadlineMs: 60_000, cid: 'nobody' },
    );
    expect(answers).toEqual([]);
  });
});

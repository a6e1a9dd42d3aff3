import { randomUUID } from 'node:crypto';
import { type Bus, decode, issuesFromError, subscribeMessages } from '@computepods/bus';
import { type CanBuildFrom, type HowToBuild, subjects } from '@computepods/protocol';

/**
 * Scatter-gather: asks every chef "how to build" at once and gathers the "can build from"
 * answers until each of `chefs` has answered or the deadline passes. Answers that fail
 * validation are left out (they do not count as a chef's) and dead-lettered, naming the field,
 * like any message that fails validation (they were only logged).
 */
export async function askHowToBuild(
  bus: Bus,
  question: HowToBuild,
  options: { chefs: readonly string[]; deadlineMs: number; cid: string },
): Promise<CanBuildFrom[]> {
  const data = bus.encode('rules.how_to_build', question, options.cid);
  const answers: CanBuildFrom[] = [];
  const waiting = new Set(options.chefs);
  if (waiting.size === 0) return answers;
  // Gathered by a subscription of its own, each answer taken as it is read: with nats.js's
  // requestMany, a MajorDomo busy past the deadline (under load) ran the deadline's timer before
  // reading answers already in its socket, and those were dropped unread, invalid ones without
  // a dead letter (pnpm bench fuzz: answers sent 190-290 ms into a 500 ms deadline).
  const inbox = `${inboxPrefix(bus)}.${randomUUID().replaceAll('-', '')}`;
  const got: Array<{ data: Uint8Array; noResponders: boolean }> = [];
  let wake: (() => void) | undefined;
  const sub = subscribeMessages(bus.nc, bus.logger, inbox, (msg) => {
    got.push({
      data: msg.data,
      noResponders: msg.data.length === 0 && msg.headers?.code === 503,
    });
    wake?.();
  });
  /** Takes the answers read so far; true once the gathering is over (all chefs, or nobody). */
  const take = (): boolean => {
    for (let m = got.shift(); m; m = got.shift()) {
      if (m.noResponders) {
        bus.logger.debug({ cid: options.cid }, 'how to build: nobody answered');
        return true;
      }
      let answer: CanBuildFrom;
      try {
        answer = decode(m.data, ['rules.can_build_from'], bus.project).body;
      } catch (err) {
        const issues = issuesFromError(err);
        bus.logger.warn({ issues, cid: options.cid }, 'how to build: invalid answer dead-lettered');
        void bus.deadLetter(inbox, m.data, 'invalid how-to-build answer', issues);
        continue;
      }
      if (answer.goal !== question.goal) continue;
      answers.push(answer);
      waiting.delete(answer.chef);
      if (waiting.size === 0) return true;
    }
    return false;
  };
  try {
    bus.nc.publish(subjects.howToBuild(bus.project), data, { reply: inbox });
    const deadline = performance.now() + options.deadlineMs;
    for (;;) {
      if (take()) return answers;
      const left = deadline - performance.now();
      if (left <= 0) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    // What the server sent before the deadline may not be read yet (this process was busy): a
    // round trip to the server reads everything before its answer.
    await bus.nc.flush().catch(() => undefined);
    take();
  } finally {
    sub.unsubscribe();
  }
  return answers;
}

/** The inbox prefix this connection's credentials may subscribe under (`_INBOX.<user>`). */
function inboxPrefix(bus: Bus): string {
  const o = (bus.nc as unknown as { options?: { inboxPrefix?: unknown } }).options;
  return typeof o?.inboxPrefix === 'string' && o.inboxPrefix ? o.inboxPrefix : '_INBOX';
}

export interface Choice {
  readonly chosen: CanBuildFrom | undefined;
  /** The other chefs that can build the goal too: warned about, not used. */
  readonly conflicts: CanBuildFrom[];
}

/**
 * The deterministic choice among answers: of the chefs that can build the goal, the first by
 * name (as the rule registry picks among declared rules). Every other chef that can is a
 * conflict: its command may differ even where its answer reads the same.
 */
export function chooseAnswer(answers: readonly CanBuildFrom[]): Choice {
  const able = answers.filter((a) => a.canBuild).sort((a, b) => (a.chef < b.chef ? -1 : 1));
  return { chosen: able[0], conflicts: able.slice(1) };
}

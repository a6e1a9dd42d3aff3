import { type Bus, type Issue, issuesOf } from '@computepods/bus';
import { CanBuildFrom, Envelope, type HowToBuild, subjects } from '@computepods/protocol';

/** How long MajorDomo waits for "can build from" answers (CP_HOW_TO_BUILD_MS, default 2 s). */
export function howToBuildMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CP_HOW_TO_BUILD_MS;
  const n = Number(raw ?? 2_000);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`CP_HOW_TO_BUILD_MS must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

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
  let replies: AsyncIterable<{ subject: string; data: Uint8Array }>;
  try {
    replies = await bus.nc.requestMany(subjects.howToBuild(bus.project), data, {
      strategy: 'timer',
      maxWait: options.deadlineMs,
    });
  } catch (err) {
    bus.logger.debug({ err: (err as Error).message }, 'how to build: nobody answered');
    return answers;
  }
  try {
    for await (const msg of replies) {
      // A no-responders status ends the gathering as an error (nats.js): an empty answer is a
      // chef's, and invalid like any other that is not JSON (it was skipped without a letter).
      const answer = parseAnswer(msg.data);
      if (!answer.ok) {
        bus.logger.warn(
          { issues: answer.issues, cid: options.cid },
          'how to build: invalid answer dead-lettered',
        );
        void bus.deadLetter(msg.subject, msg.data, 'invalid how-to-build answer', answer.issues);
        continue;
      }
      if (answer.value.goal !== question.goal) continue;
      answers.push(answer.value);
      waiting.delete(answer.value.chef);
      if (waiting.size === 0) break;
    }
  } catch (err) {
    // The deadline ends the gathering; what came before it stands.
    bus.logger.debug({ err: (err as Error).message }, 'how to build: gathering ended');
  }
  return answers;
}

function parseAnswer(
  data: Uint8Array,
): { ok: true; value: CanBuildFrom } | { ok: false; issues: Issue[] } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    return { ok: false, issues: [{ path: '', message: `not JSON: ${(err as Error).message}` }] };
  }
  const env = Envelope.safeParse(json);
  if (!env.success) return { ok: false, issues: issuesOf(env.error) };
  const body = CanBuildFrom.safeParse(env.data.body);
  if (!body.success) return { ok: false, issues: issuesOf(body.error, ['body']) };
  return { ok: true, value: body.data };
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

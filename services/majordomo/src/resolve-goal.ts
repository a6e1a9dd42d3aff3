import type { CanBuildFrom } from '@computepods/protocol';
import { chooseAnswer } from './ask-chefs.js';

/** How many goals deep "how to build" follows inputs that do not exist yet. */
export const MAX_GOAL_DEPTH = 4;

export interface GoalWorld {
  /** Gathers the chefs' "can build from" answers for one goal. */
  ask(goal: string): Promise<CanBuildFrom[]>;
  /** The path exists now, or a rule already in the graph produces it. */
  known(path: string): boolean;
}

export interface GoalResolution {
  /** Answers to plan with, inputs' goals before the goals that need them; empty when none. */
  readonly adopt: CanBuildFrom[];
  /** Chefs that could build a goal too, not used (first by name wins). */
  readonly conflicts: Array<{ goal: string; kept: string; ignored: string }>;
  /** Why the goal cannot be built, when it cannot. */
  readonly why?: string;
}

/**
 * Works out how to build `goal` by asking the chefs. A chef that can build it wins (first by
 * name). When none can because inputs are missing, the first chef by name that has a rule for it
 * says which; each missing input is then asked for in turn (backward chaining, up to
 * MAX_GOAL_DEPTH goals deep), and the goal is planned when all of them can be.
 */
export async function resolveGoal(
  goal: string,
  world: GoalWorld,
  depth = 0,
  asked: Set<string> = new Set(),
): Promise<GoalResolution> {
  asked.add(goal);
  const answers = await world.ask(goal);
  const { chosen, conflicts } = chooseAnswer(answers);
  if (chosen) {
    const clashes = conflicts.map((c) => ({ goal, kept: chosen.chef, ignored: c.chef }));
    return { adopt: [chosen], conflicts: clashes };
  }
  const near = answers.filter((a) => a.rule).sort((a, b) => (a.chef < b.chef ? -1 : 1))[0];
  if (!near)
    return {
      adopt: [],
      conflicts: [],
      why: `none of the ${answers.length} chefs that answered can build ${goal}`,
    };
  const missing = near.from.filter((p) => !world.known(p));
  const lacking = `chef ${near.chef} could build ${goal} from ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} missing`;
  if (depth + 1 >= MAX_GOAL_DEPTH || missing.some((p) => asked.has(p)))
    return { adopt: [], conflicts: [], why: lacking };
  const adopt: CanBuildFrom[] = [];
  // No answer chosen, so none in conflict with it: only those of the inputs' goals.
  const all: GoalResolution['conflicts'] = [];
  for (const input of missing) {
    const sub = await resolveGoal(input, world, depth + 1, asked);
    if (sub.why) return { adopt: [], conflicts: [], why: `${lacking}; ${sub.why}` };
    adopt.push(...sub.adopt);
    all.push(...sub.conflicts);
  }
  return { adopt: [...adopt, near], conflicts: all };
}

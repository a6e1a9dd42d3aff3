import type { Bus } from '@computepods/bus';
import { type BuildRequested, buckets, RulesDeclared, subjects } from '@computepods/protocol';

/**
 * For MajorDomo's in-process tests: plays chef `gen` by hand. It declares one rule, `up`
 * (`src/{stem}.txt` → `out/{stem}.up`), for `pod`, and pushes every build request MajorDomo
 * sends it into `requests`, so a test can answer them as it likes.
 */
export async function playChef(
  bus: Bus,
  project: string,
  pod: string,
  requests: BuildRequested[],
): Promise<void> {
  await (await bus.kv(buckets.rules(project), RulesDeclared)).put('gen', {
    chef: 'gen',
    pod,
    types: [],
    rules: [
      {
        id: 'up',
        inputs: ['src/{stem}.txt'],
        optionalInputs: [],
        outputs: ['out/{stem}.up'],
        auxiliaries: [],
        onDemand: false,
        command: 'tr a-z A-Z < {in0} > {out0}',
        resource: 'local',
        cutoffIgnore: [],
        discover: 'none',
      },
    ],
  });
  bus.listen(subjects.buildRequest(project, 'gen'), {
    accept: ['build.requested'],
    project,
    handler: (m) => {
      requests.push(m.body);
    },
  });
}

import { projectionKey } from '@computepods/depgraph';
import { hashFile } from '@computepods/fswatch';
import type { BuildRequested, BuildResult, Rule } from '@computepods/protocol';
import { confineLocal } from './confine.js';
import { cutoffDigestFile } from './digest.js';
import type { BuildPaths } from './rule-paths.js';

/**
 * True when a build would read nothing its last run did not: the same inputs, each with the hash
 * that run recorded (its projected hash for an input the rule projects, as measured now, else
 * the file's), and every output still on disk as that run left it (its cutoff digest). Anything
 * unknown, missing or different: false, and the task runs.
 */
export async function unchangedSinceLastRun(
  workspace: string,
  rule: Rule,
  req: BuildRequested,
  paths: BuildPaths,
  inputProjections: BuildResult['inputProjections'],
): Promise<boolean> {
  const last = req.lastRun;
  if (!last) return false;
  if (Object.keys(last.inputs).length !== paths.inputs.length) return false;
  const keys = new Map<string, string>();
  for (const p of rule.projections) {
    const i = rule.inputs.indexOf(p.input);
    const path = i >= 0 ? paths.required[i] : paths.optional[rule.optionalInputs.indexOf(p.input)];
    if (path !== undefined) keys.set(path, projectionKey(p));
  }
  for (const path of paths.inputs) {
    const was = last.inputs[path];
    if (was === undefined) return false;
    const key = keys.get(path);
    const projected = key === undefined ? undefined : inputProjections[path]?.[key];
    if (was !== projected && was !== req.inputs[path]) return false;
  }
  for (const out of paths.outputs) {
    const was = last.outputs[out];
    if (was === undefined) return false;
    const full = await confineLocal(workspace, out).catch(() => undefined);
    if (!full) return false;
    const now = await (rule.cutoffIgnore.length
      ? cutoffDigestFile(full, rule.cutoffIgnore)
      : hashFile(full)
    ).catch(() => undefined);
    if (now !== was) return false;
  }
  return true;
}

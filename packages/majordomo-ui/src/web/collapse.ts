// The graph collapsed by folder and rule: every folder's artefacts drawn as one node, every
// rule's tasks between collapsed folders as one, so a 10,000-artefact project reads as its
// shape (src/ → compile ×5000 → obj/ → link → bin/). A folder opened shows its artefacts, and
// the tasks next to them, one by one.
import type { ArtefactStatus, GraphJSON } from './types.js';

/** A collapsed folder's key: its path with a trailing `/`, which no artefact path has. */
export const folderKey = (dir: string): string => `${dir}/`;
export const isFolderKey = (key: string): boolean => key.endsWith('/');

/** A collapsed rule's task key: `rule ×N` (a task id is `rule:stem`, never with a space). */
const ruleKey = (ruleId: string, n: number): string => `${ruleId} ×${n}`;

export interface Collapsed {
  graph: GraphJSON;
  /** Collapsed folder key → the artefact paths it holds. */
  folders: Map<string, string[]>;
  /** Collapsed task key → the task ids it holds. */
  rules: Map<string, string[]>;
}

export function folderOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '.' : path.slice(0, i);
}

/**
 * `g` with the artefacts of each folder not in `open` merged into one artefact (key
 * folderKey(dir)), and the tasks of each rule whose inputs and outputs all lie in collapsed
 * folders merged into one task per rule. A task touching an open folder stays itself. Cycles
 * keep their members (merged ones by their merged key).
 */
export function collapseGraph(g: GraphJSON, open: ReadonlySet<string>): Collapsed {
  const folders = new Map<string, string[]>();
  const keyOf = new Map<string, string>();
  for (const a of g.artefacts) {
    const dir = folderOf(a.path);
    if (open.has(dir)) {
      keyOf.set(a.path, a.path);
      continue;
    }
    const key = folderKey(dir);
    keyOf.set(a.path, key);
    folders.set(key, [...(folders.get(key) ?? []), a.path]);
  }
  const mapPath = (p: string) => keyOf.get(p) ?? p;
  const collapsedTask = (t: GraphJSON['tasks'][number]) =>
    [...t.inputs, ...t.optionalInputs, ...t.discovered, ...t.outputs].every((p) =>
      isFolderKey(mapPath(p)),
    );

  const byRule = new Map<string, GraphJSON['tasks']>();
  const tasks: GraphJSON['tasks'] = [];
  for (const t of g.tasks) {
    if (collapsedTask(t)) byRule.set(t.ruleId, [...(byRule.get(t.ruleId) ?? []), t]);
    else
      tasks.push({
        ...t,
        inputs: unique(t.inputs.map(mapPath)),
        optionalInputs: unique(t.optionalInputs.map(mapPath)),
        discovered: unique(t.discovered.map(mapPath)),
        outputs: unique(t.outputs.map(mapPath)),
      });
  }
  const rules = new Map<string, string[]>();
  const taskKey = new Map<string, string>();
  for (const [ruleId, list] of byRule) {
    const key = ruleKey(ruleId, list.length);
    rules.set(
      key,
      list.map((t) => t.id),
    );
    for (const t of list) taskKey.set(t.id, key);
    const all = (f: (t: GraphJSON['tasks'][number]) => readonly string[]) =>
      unique(list.flatMap((t) => f(t).map(mapPath)));
    const [first] = list;
    if (!first) continue;
    tasks.push({
      id: key,
      ruleId,
      stem: '',
      inputs: all((t) => t.inputs),
      optionalInputs: all((t) => t.optionalInputs),
      discovered: all((t) => t.discovered),
      outputs: all((t) => t.outputs),
      component: first.component,
      dirty: list.some((t) => t.dirty),
    });
  }
  const artefacts: GraphJSON['artefacts'] = g.artefacts.filter((a) => keyOf.get(a.path) === a.path);
  for (const key of folders.keys())
    artefacts.push({ path: key, hash: null, state: 'source', producer: null });
  const components = g.components.map((c) => ({
    ...c,
    tasks: unique(c.tasks.map((t) => taskKey.get(t) ?? t)),
  }));
  return { graph: { rules: g.rules, artefacts, tasks, components }, folders, rules };
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

/** Most in need of attention first: a folder takes the state of its worst artefact. */
const SEVERITY: readonly ArtefactStatus[] = [
  'failed',
  'not_converging',
  'cancelled',
  'building',
  'queued',
  'stale',
  'missing',
  'up_to_date',
  'source',
];

export function worstState(states: Iterable<ArtefactStatus>): ArtefactStatus {
  let worst = SEVERITY.length - 1;
  for (const s of states) worst = Math.min(worst, SEVERITY.indexOf(s));
  return SEVERITY[worst] ?? 'source';
}

/** How many of `paths` are in each state (states with none left out). */
export function countStates(
  paths: readonly string[],
  stateOf: (path: string) => ArtefactStatus,
): Map<ArtefactStatus, number> {
  const counts = new Map<ArtefactStatus, number>();
  for (const p of paths) {
    const s = stateOf(p);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return counts;
}

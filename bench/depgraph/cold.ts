// The cold path of pnpm bench depgraph, as one fresh process (bundled by the bench with esbuild,
// as `pnpm build` bundles the tools, so no TypeScript is compiled at run time): read the
// persisted state from disk, decode it, rebuild the graph, the component analysis, then one
// changed source → plan. The state is either the compact form (exportBytes: decodeSnapshot, then
// fromSnapshot) or the older JSON (JSON.parse, then fromState). Prints one JSON line: the phases
// in ms, each from the end of the one before, and the CPU of each; `boot` runs from the parent's
// spawn (argv[2], process.hrtime, CLOCK_MONOTONIC and so comparable across processes) to this
// module's first statement, bundle evaluation included.
import { readFileSync } from 'node:fs';
import { DependencyManager, decodeSnapshot, isEncodedState } from '@computepods/depgraph';

const at = () => process.hrtime.bigint();
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const tMain = at();
const cMain = cpu();
const [spawnedAt, statePath, changed, newHash] = process.argv.slice(2);
if (!spawnedAt || !statePath || !changed || !newHash) {
  throw new Error('usage: cold.mjs SPAWN_HRTIME_NS STATE_FILE CHANGED_PATH NEW_HASH');
}
const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
const bytes = readFileSync(statePath);
const tRead = at();
const cRead = cpu();
const compact = isEncodedState(bytes);
const decoded = compact ? decodeSnapshot(bytes) : JSON.parse(bytes.toString('utf8'));
const tParse = at();
const cParse = cpu();
const dm = compact ? DependencyManager.fromSnapshot(decoded) : DependencyManager.fromState(decoded);
const tLoad = at();
const cLoad = cpu();
dm.stats(); // forces the component analysis, so it is its own phase
const tComponents = at();
const cComponents = cpu();
dm.setArtefact(changed, newHash);
const plan = dm.plan();
const tPlan = at();
const cPlan = cpu();
const tasks = plan.components.reduce((n, c) => n + c.tasks.length, 0);
console.log(
  JSON.stringify({
    format: compact ? 'compact' : 'json',
    boot: ms(BigInt(spawnedAt), tMain),
    read: ms(tMain, tRead),
    parse: ms(tRead, tParse),
    load: ms(tParse, tLoad),
    components: ms(tLoad, tComponents),
    plan: ms(tComponents, tPlan),
    cpu: {
      boot: cMain,
      read: cRead - cMain,
      parse: cParse - cRead,
      load: cLoad - cParse,
      components: cComponents - cLoad,
      plan: cPlan - cComponents,
    },
    tasks,
    stateBytes: bytes.length,
  }),
);

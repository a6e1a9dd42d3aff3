// The cold path of pnpm bench depgraph, as one fresh process (bundled by the bench with esbuild,
// as `pnpm build` bundles the tools, so no TypeScript is compiled at run time): read the
// persisted state from disk, rebuild the graph (fromState), the component analysis, then one
// changed source → plan. Prints one JSON line: the phases in ms, each from the end of the one
// before; `boot` runs from the parent's spawn (argv[2], process.hrtime, CLOCK_MONOTONIC and so
// comparable across processes) to this module's first statement, bundle evaluation included.
import { readFileSync } from 'node:fs';
import { DependencyManager } from '@computepods/depgraph';

const at = () => process.hrtime.bigint();
const tMain = at();
const [spawnedAt, statePath, changed, newHash] = process.argv.slice(2);
if (!spawnedAt || !statePath || !changed || !newHash) {
  throw new Error('usage: cold.mjs SPAWN_HRTIME_NS STATE_JSON CHANGED_PATH NEW_HASH');
}
const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
const text = readFileSync(statePath, 'utf8');
const tRead = at();
const state = JSON.parse(text);
const tParse = at();
const dm = DependencyManager.fromState(state);
const tLoad = at();
dm.stats(); // forces the component analysis, so it is its own phase
const tComponents = at();
dm.setArtefact(changed, newHash);
const plan = dm.plan();
const tPlan = at();
const tasks = plan.components.reduce((n, c) => n + c.tasks.length, 0);
console.log(
  JSON.stringify({
    boot: ms(BigInt(spawnedAt), tMain),
    read: ms(tMain, tRead),
    parse: ms(tRead, tParse),
    load: ms(tParse, tLoad),
    components: ms(tLoad, tComponents),
    plan: ms(tComponents, tPlan),
    tasks,
    stateBytes: Buffer.byteLength(text),
  }),
);

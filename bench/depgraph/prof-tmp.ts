import { DependencyManager } from '@computepods/depgraph';
import { generate } from './graph-gen.js';
const cb = generate();
const state = JSON.parse(JSON.stringify(cb.state));
const cpu = (f: () => void) => { const c0 = process.cpuUsage(); f(); const c = process.cpuUsage(c0); return ((c.user + c.system) / 1000).toFixed(0); };
for (let i = 0; i < 3; i++) {
  const dm = new DependencyManager();
  const out: string[] = [];
  (dm as any).batching = true;
  out.push('art ' + cpu(() => { for (const p in state.artefacts) dm.setArtefact(p, state.artefacts[p]); }));
  out.push('rules ' + cpu(() => { for (const r of state.rules) dm.addRule(r); }));
  out.push('traces ' + cpu(() => { for (const id in state.traces) dm.restoreTrace(id, state.traces[id]); }));
  (dm as any).batching = false;
  out.push('recheck ' + cpu(() => { (dm as any).change(() => { for (const t of (dm as any).graph.taskById.values()) (dm as any).graph.log.recheck.add(t); }); }));
  out.push('stats ' + cpu(() => dm.stats()));
  console.log(out.join('  '));
}

import { int32At } from './checked.js';

/**
 * Strongly connected components of a graph in compressed sparse row form (`succ` of node v are
 * `targets[offsets[v]..offsets[v+1]]`), iteratively so deep chains cannot overflow the stack.
 * Components come out with every successor's component first: when successors are a task's
 * dependencies, that is build order. `include` says which nodes exist (a removed task's slot does
 * not); no edge may lead to a node it excludes.
 */
export function tarjan(
  n: number,
  offsets: Int32Array,
  targets: Int32Array,
  include: (v: number) => boolean = () => true,
): { comp: Int32Array; count: number } {
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const comp = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack = new Int32Array(n);
  const callNode = new Int32Array(n);
  const callEdge = new Int32Array(n);
  let sp = 0;
  let next = 0;
  let count = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1 || !include(root)) continue;
    let depth = 0;
    callNode[0] = root;
    callEdge[0] = int32At(offsets, root, 'node');
    index[root] = low[root] = next++;
    stack[sp++] = root;
    onStack[root] = 1;
    while (depth >= 0) {
      const v = int32At(callNode, depth, 'call depth');
      const e = int32At(callEdge, depth, 'call depth');
      if (e < int32At(offsets, v + 1, 'node')) {
        callEdge[depth] = e + 1;
        const w = int32At(targets, e, 'edge');
        if (index[w] === -1) {
          index[w] = low[w] = next++;
          stack[sp++] = w;
          onStack[w] = 1;
          depth++;
          callNode[depth] = w;
          callEdge[depth] = int32At(offsets, w, 'node');
        } else if (onStack[w]) {
          low[v] = Math.min(int32At(low, v, 'node'), int32At(index, w, 'node'));
        }
        continue;
      }
      if (low[v] === index[v]) {
        let w: number;
        do {
          w = int32At(stack, --sp, 'stack slot');
          onStack[w] = 0;
          comp[w] = count;
        } while (w !== v);
        count++;
      }
      depth--;
      if (depth >= 0) {
        const u = int32At(callNode, depth, 'call depth');
        low[u] = Math.min(int32At(low, u, 'node'), int32At(low, v, 'node'));
      }
    }
  }
  return { comp, count };
}

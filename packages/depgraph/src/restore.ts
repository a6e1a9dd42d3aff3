import { StateCorruptError } from './errors.js';
import type { GraphState } from './types.js';

/**
 * The older JSON form of a state, checked as far as fromState relies on its shape: the fields
 * it iterates exist and have the right kind. Entries are checked as they are restored.
 */
export function parseStateJson(bytes: Uint8Array): GraphState {
  let state: unknown;
  try {
    state = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString());
  } catch (e) {
    throw new StateCorruptError(
      'json',
      `neither an encoded state nor JSON (${(e as Error).message})`,
    );
  }
  if (!isObject(state)) throw new StateCorruptError('json', 'not an object');
  if (!Array.isArray(state.rules) || !state.rules.every(isObject)) {
    throw new StateCorruptError('rules', 'not an array of rule objects');
  }
  if (!isObject(state.artefacts)) throw new StateCorruptError('artefacts', 'not an object');
  if (!isObject(state.traces) || !Object.values(state.traces).every(isTrace)) {
    throw new StateCorruptError('traces', 'not an object of task id → { inputs, outputs }');
  }
  if (state.projections !== undefined && !isObject(state.projections)) {
    throw new StateCorruptError('projections', 'not an object');
  }
  return state as unknown as GraphState;
}

function isTrace(v: unknown): boolean {
  return (
    isObject(v) &&
    isObject(v.inputs) &&
    isObject(v.outputs) &&
    (v.discovered === undefined || Array.isArray(v.discovered))
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

import { createHash } from 'node:crypto';
import { CutoffHasher } from './cutoff.js';

/**
 * The part of an input a step really reads: the lines matching `lines`, or what `command`
 * (an argv, run by the caller without a shell, the input on stdin) writes to stdout.
 */
export interface ProjectionSpec {
  readonly lines?: string;
  readonly command?: readonly string[];
}

/**
 * Names a projection function: equal keys, equal projections of equal bytes. Derived from what
 * decides the projected bytes (not from bounds such as a timeout), so a chef and MajorDomo that
 * read the same rule agree on it without telling each other.
 */
export function projectionKey(spec: ProjectionSpec): string {
  const what = JSON.stringify([spec.lines ?? null, spec.command ?? null]);
  return createHash('sha256').update(what).digest('hex').slice(0, 16);
}

/**
 * What every projected hash starts with: its key. A projected hash then never equals a plain
 * file hash, nor one made by another projection, so a trace that recorded one kind and a graph
 * that now knows another compare unequal (the step reruns) instead of equal by accident.
 */
function prefix(key: string): string {
  return `computepods-projection ${key}\n`;
}

/** Hashes the projected bytes as they come (a command's stdout): feed with update(). */
export function projectedHasher(key: string): {
  update(chunk: Uint8Array | string): void;
  digest(): string;
} {
  const h = createHash('sha256').update(prefix(key));
  return {
    update: (chunk) => void h.update(chunk),
    digest: () => h.digest('hex'),
  };
}

/**
 * Streaming hash of a line-filter projection: only the lines matching `pattern` (tested without
 * their terminator, as cutoff ignore patterns are) count, byte for byte with their endings.
 */
export function lineProjectionHasher(key: string, pattern: string): CutoffHasher {
  return new CutoffHasher([pattern], { keep: true, prefix: prefix(key) });
}

/** One-shot line-filter projection hash. */
export function projectLines(content: Uint8Array | string, pattern: string): string {
  return lineProjectionHasher(projectionKey({ lines: pattern }), pattern)
    .update(content)
    .digest();
}

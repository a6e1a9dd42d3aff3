import { compilePattern, type Pattern } from '@computepods/depgraph';

const compiled = new Map<string, Pattern>();

/**
 * depgraph's compilePattern, once per pattern: a chef fills its rules' patterns for every build
 * request (and a link rule can have hundreds), from a fixed set, its definition's. Patterns
 * are immutable once compiled.
 */
export function patternOf(source: string): Pattern {
  let p = compiled.get(source);
  if (!p) {
    p = compilePattern(source);
    compiled.set(source, p);
  }
  return p;
}

import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  lineProjectionHasher,
  matchPattern,
  projectedHasher,
  projectionKey,
} from '@computepods/depgraph';
import type { InputProjection, ProjectedHashes, Rule } from '@computepods/protocol';
import { patternOf } from './patterns.js';
import { readWhole, withSmallFile } from './small-file.js';

/** The projected hash, or why there is none (the whole file then counts: never a missed edit). */
export type Projected = { readonly sha256: string } | { readonly error: string };

/**
 * Hashes the part of the file at `full` that `spec` keeps. A line filter streams the file; a
 * command runs without a shell in the file's directory, the file on its stdin, its stdout hashed
 * as it comes: killed at its time limit or output cap, and any failure gives no projection.
 */
export async function projectFile(full: string, spec: InputProjection): Promise<Projected> {
  const key = projectionKey(spec);
  if (spec.lines !== undefined) {
    const hasher = lineProjectionHasher(key, spec.lines);
    // A small file (an .aux) is read in this thread (small-file.ts): a stream's open, reads and
    // close were four trips through libuv's pool, on the path from a pdflatex pass's end to its
    // result (pnpm bench e2e's chef_out stage). A file that changed while read is streamed.
    const small = withSmallFile(full, readWhole);
    if (small) return { sha256: hasher.update(small).digest() };
    try {
      for await (const chunk of createReadStream(full, { highWaterMark: 1 << 20 }))
        hasher.update(chunk as Buffer);
    } catch (err) {
      return { error: `cannot read ${full}: ${(err as Error).message}` };
    }
    return { sha256: hasher.digest() };
  }
  return runProjection(full, spec, key);
}

function runProjection(full: string, spec: InputProjection, key: string): Promise<Projected> {
  const [program, ...args] = spec.command ?? [];
  if (program === undefined) return Promise.resolve({ error: 'no command' });
  const what = JSON.stringify(spec.command).slice(0, 200);
  return new Promise((resolve) => {
    const hasher = projectedHasher(key);
    let bytes = 0;
    let failure: string | undefined;
    const child = spawn(program, args, {
      cwd: dirname(full),
      stdio: ['pipe', 'pipe', 'ignore'],
      // A projection must not depend on the chef's locale (sort order, say).
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    const stop = (why: string) => {
      failure ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`took longer than ${spec.timeoutMs} ms`), spec.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > spec.maxOutputBytes) return stop(`wrote more than ${spec.maxOutputBytes} bytes`);
      hasher.update(chunk);
    });
    // A command that stops reading early (head) closes its stdin: not a failure of its own.
    pipeline(createReadStream(full), child.stdin).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE')
        stop(`cannot feed it ${full}: ${err.message}`);
    });
    child.on('error', (err) => stop(`cannot run it: ${err.message}`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!failure && code !== 0) failure = `exited ${code ?? signal}`;
      resolve(failure ? { error: `projection ${what}: ${failure}` } : { sha256: hasher.digest() });
    });
  });
}

/** The projections among `rules` whose input pattern matches `path`, by key. */
export function projectionsOf(rules: Iterable<Rule>, path: string): Map<string, InputProjection> {
  const out = new Map<string, InputProjection>();
  for (const rule of rules)
    for (const p of rule.projections)
      if (matchPattern(patternOf(p.input), path)) out.set(projectionKey(p), p);
  return out;
}

/**
 * Projected hashes of one file for every projection given; those that fail are left out (and
 * named in `errors`), so their consumers compare the whole file.
 */
export async function projectAll(
  full: string,
  specs: ReadonlyMap<string, InputProjection>,
): Promise<{ hashes: ProjectedHashes; errors: string[] }> {
  const hashes: ProjectedHashes = {};
  const errors: string[] = [];
  for (const [key, spec] of specs) {
    const r = await projectFile(full, spec);
    if ('sha256' in r) hashes[key] = r.sha256;
    else errors.push(r.error);
  }
  return { hashes, errors };
}

import { spawnSync } from 'node:child_process';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CodeBase } from './graph-gen.js';

const MASK = (1n << 64n) - 1n;

/** Ninja's MurmurHash64A (seed 0xDECAFBADDECAFBAD): the command hash in .ninja_log. */
export function ninjaCommandHash(command: string): string {
  const data = Buffer.from(command, 'utf8');
  const m = 0xc6a4a7935bd1e995n;
  let h = (0xdecafbaddecafbadn ^ ((BigInt(data.length) * m) & MASK)) & MASK;
  let i = 0;
  for (; i + 8 <= data.length; i += 8) {
    let k = data.readBigUInt64LE(i);
    k = (k * m) & MASK;
    k ^= k >> 47n;
    k = (k * m) & MASK;
    h ^= k;
    h = (h * m) & MASK;
  }
  const rest = data.length & 7;
  if (rest) {
    for (let j = rest - 1; j >= 0; j--) h ^= BigInt(data[i + j]!) << BigInt(8 * j);
    h = (h * m) & MASK;
  }
  h ^= h >> 47n;
  h = (h * m) & MASK;
  h ^= h >> 47n;
  return h.toString(16);
}

export const T_SOURCE = 1_700_000_000;
export const T_BUILT = T_SOURCE + 100;
export const T_EDIT = T_SOURCE + 200;

/**
 * Writes the code base as real (empty) files with a build.ninja and a .ninja_log that says
 * everything was built: sources older than outputs, commands recorded, so `ninja -n` has no work.
 */
export function writeNinjaTree(dir: string, cb: CodeBase): { files: number } {
  const generated = new Set(cb.ninja.flatMap((s) => s.outs));
  const dirs = new Set<string>();
  const all = new Set<string>([...Object.keys(cb.state.artefacts), ...generated]);
  for (const p of all) dirs.add(dirname(p));
  for (const d of dirs) mkdirSync(join(dir, d), { recursive: true });
  for (const p of all) {
    const full = join(dir, p);
    writeFileSync(full, '');
    const t = generated.has(p) ? T_BUILT : T_SOURCE;
    utimesSync(full, t, t);
  }
  const lines: string[] = [];
  for (const rule of new Set(cb.ninja.map((s) => s.rule))) {
    lines.push(`rule ${rule}`, '  command = touch $out', '');
  }
  const log = ['# ninja log v5'];
  const mtime = `${BigInt(T_BUILT) * 1_000_000_000n}`;
  for (const s of cb.ninja) {
    const implicit = s.implicit.length ? ` | ${s.implicit.join(' ')}` : '';
    lines.push(`build ${s.outs.join(' ')}: ${s.rule} ${s.ins.join(' ')}${implicit}`);
    const hash = ninjaCommandHash(`touch ${s.outs.join(' ')}`);
    for (const o of s.outs) log.push(`0\t1\t${mtime}\t${o}\t${hash}`);
  }
  writeFileSync(join(dir, 'build.ninja'), `${lines.join('\n')}\n`);
  writeFileSync(join(dir, '.ninja_log'), `${log.join('\n')}\n`);
  return { files: all.size };
}

/** Runs `ninja -n` in dir: wall time and how many commands it would run. */
export function ninjaDryRun(dir: string): { ms: number; commands: number; output: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ninja', ['-n'], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`ninja -n failed: ${r.stderr || r.stdout}`);
  const commands = r.stdout.split('\n').filter((l) => /^\[\d+\/\d+\]/.test(l)).length;
  return { ms, commands, output: r.stdout };
}

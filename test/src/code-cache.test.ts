import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCommand, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { bundle, TOOLS } from '../../scripts/bundle.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const codeCache = pathToFileURL(`${root}scripts/code-cache.mjs`).href;

/**
 * Runs `file` (a CommonJS script) as a bundle's loader does; stderr's last line is whether its
 * cache was used, refused by V8 or absent (runCached's answer).
 */
async function start(file: string) {
  const loader = `import { runCached } from ${JSON.stringify(codeCache)};
const cache = runCached(new URL(${JSON.stringify(pathToFileURL(file).href)}));
process.stderr.write(cache + '\\n');`;
  const r = await runCommand(process.execPath, ['--input-type=module', '-e', loader]);
  expect(r.code, r.stderr).toBe(0);
  return { out: r.stdout.trim(), cache: r.stderr.trim().split('\n').pop() };
}

/** A program whose output depends on a function's body, so that stale code would show. */
const program = (factor: number) =>
  `function scale(x) { return x * ${factor}; }\nconsole.log('answer', scale(7));\n`;

/**
 * A bundle's code runs through a V8 code cache (scripts/code-cache.mjs, Node 20 has no compile
 * cache): a start uses the cache written by an earlier one, and never a cache made for other
 * code, torn, or made under other V8 flags (a program that changes them gets the cache as it was
 * just before); a cache that cannot be written costs nothing else.
 */
describe('code cache of a bundle', () => {
  const dir = new TempDir('cp-code-cache-');
  afterAll(() => dir[Symbol.dispose]());

  it('writes a cache at the first start and uses it at the next, with the same output', async () => {
    const file = dir.join('first.cjs');
    writeFileSync(file, program(6));
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'none' });
    expect(existsSync(`${file}.v8cache`)).toBe(true);
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'used' });
    expect(readdirSync(dir.path).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('never uses a cache made for other code, even of the same length', async () => {
    const file = dir.join('edited.cjs');
    writeFileSync(file, program(6));
    await start(file);
    writeFileSync(file, program(5)); // same length: V8's own check would let the old code run
    expect(await start(file)).toEqual({ out: 'answer 35', cache: 'none' });
    expect(await start(file)).toEqual({ out: 'answer 35', cache: 'used' });
  });

  it('ignores a torn or foreign cache file, then writes a good one', async () => {
    const file = dir.join('torn.cjs');
    writeFileSync(file, program(6));
    await start(file);
    const good = readFileSync(`${file}.v8cache`);
    writeFileSync(`${file}.v8cache`, good.subarray(0, good.length >> 1));
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'none' });
    writeFileSync(`${file}.v8cache`, Buffer.alloc(good.length, 7));
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'none' });
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'used' });
  });

  it('leaves a cache the next start can use when the program changes V8 flags', async () => {
    const file = dir.join('flags.cjs');
    writeFileSync(
      file,
      `require('node:v8').setFlagsFromString('--heap-growing-percent=25');\n${program(6)}`,
    );
    expect((await start(file)).cache).toBe('none');
    // A cache made after the flag changed would be refused ('rejected') at every start.
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'used' });
  });

  it('keeps in the cache what ran before a change of V8 flags, not only the top level', async () => {
    // One function of some size, run before the program's first flag change or after it.
    const body = Array.from({ length: 300 }, (_, i) => `s += ${i} * x;`).join(' ');
    const big = `function big(x) { let s = 0; ${body} return s; }\n`;
    const change = "require('node:v8').setFlagsFromString('--heap-growing-percent=25');\n";
    const sizes: number[] = [];
    for (const [name, text] of [
      ['before.cjs', `${big}big(1);\n${change}`],
      ['after.cjs', `${big}${change}big(1);\n`],
    ] as const) {
      const file = dir.join(name);
      writeFileSync(file, text);
      await start(file);
      expect(await start(file)).toEqual({ out: '', cache: 'used' });
      sizes.push(statSync(`${file}.v8cache`).size);
    }
    const [before = 0, after = 0] = sizes;
    expect(before).toBeGreaterThan(after + 1000); // big's bytecode: only run before the change
  });

  it('writes a new cache when a start that used one compiled much more than it held', async () => {
    // One function of some size, run only once `more` exists: as MajorDomo's first start (a full
    // restore) wrote the cache and every later one runs its snapshot restore.
    const file = dir.join('refresh.cjs');
    const body = Array.from({ length: 300 }, (_, i) => `s += ${i} * x;`).join(' ');
    writeFileSync(
      file,
      `function big(x) { let s = 0; ${body} return s; }
if (require('node:fs').existsSync(__filename + '.more')) console.log('big', big(1));
require('node:v8').setFlagsFromString('--heap-growing-percent=25');
`,
    );
    expect(await start(file)).toEqual({ out: '', cache: 'none' });
    const first = statSync(`${file}.v8cache`).size;
    writeFileSync(`${file}.more`, '');
    expect(await start(file)).toEqual({ out: 'big 44850', cache: 'used' });
    // Taken before the program changed V8's flags: the next start uses it.
    expect(statSync(`${file}.v8cache`).size).toBeGreaterThan(first + 1000); // big's bytecode
    expect(await start(file)).toEqual({ out: 'big 44850', cache: 'used' });
  });

  it('leaves a cache it used alone when the start compiled nothing it did not hold', async () => {
    const file = dir.join('same.cjs');
    writeFileSync(
      file,
      `${program(6)}require('node:v8').setFlagsFromString('--heap-growing-percent=25');\n`,
    );
    await start(file);
    const cache = `${file}.v8cache`;
    const written = { bytes: readFileSync(cache), at: statSync(cache).mtimeMs };
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'used' });
    expect(readFileSync(cache).equals(written.bytes)).toBe(true);
    expect(statSync(cache).mtimeMs).toBe(written.at);
  });

  it('runs the program when its cache cannot be written or read', async () => {
    const file = dir.join('nowhere.cjs');
    writeFileSync(file, program(6));
    mkdirSync(`${file}.v8cache`); // neither a file to read nor a name a file can take
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'none' });
    expect(await start(file)).toEqual({ out: 'answer 42', cache: 'none' });
    expect(readdirSync(dir.path).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it("runs a tool's bundle from its cache: the second start leaves the cache as it was", async () => {
    const tool = TOOLS.find((t) => t.entry.includes('inotify2nats'))!;
    const out = dir.join('inotify2nats.mjs');
    await bundle({ ...tool, outfile: out });
    const inputs = JSON.parse(readFileSync(`${out}.inputs.json`, 'utf8')) as string[];
    expect(inputs).toEqual(
      expect.arrayContaining([dir.join('inotify2nats.cjs'), `${root}scripts/code-cache.mjs`]),
    );
    // Strict, as the ES modules it is made of: the directive is its first statement.
    const code = readFileSync(dir.join('inotify2nats.cjs'), 'utf8');
    expect(code.replace(/^(\/\/[^\n]*\n)*/, '')).toMatch(/^'use strict';\n/);
    const help = async () => {
      const r = await runCommand(process.execPath, [out, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Usage: inotify2nats/);
    };
    await help();
    const cache = dir.join('inotify2nats.cjs.v8cache');
    const written = { bytes: readFileSync(cache), at: statSync(cache).mtimeMs };
    await help();
    expect(readFileSync(cache).equals(written.bytes)).toBe(true);
    expect(statSync(cache).mtimeMs).toBe(written.at);
  });
});

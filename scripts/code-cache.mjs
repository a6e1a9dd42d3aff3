// Runs a bundle's code (scripts/bundle.mjs: `<name>.cjs`, loaded by the `<name>.mjs` beside it)
// with a V8 code cache, so a start does not parse and compile its 3.5 MB again. Node 22 has
// `module.enableCompileCache()` for this; Node 20 does not, so the bundle is a CommonJS script
// compiled through `vm.Script` with `cachedData`, the way `v8-compile-cache` does it.
//
// The cache (`<name>.cjs.v8cache`, beside the code) begins with a key: the SHA-1 of the code,
// of this Node's version and architecture, and of the V8 data that follows. Any other key (a
// rebuilt bundle, another Node, a torn or foreign file) and the cache is not used; V8 also
// refuses data from another V8 or other flags. A start without a usable cache compiles as
// before, then writes a new cache once it has run a while (produceLater), so the functions it
// compiled lazily are in it too. A start that used a cache writes a new one when it compiled
// notably more than the cache held (refreshLater): the first start of a bundle is not always the
// one that runs a program's usual path (MajorDomo's first start restores from every record, every
// later one from its snapshot). Writing is best effort: a
// read-only or full disk costs only the cache, never the start. Only `node:` modules here.
import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

/** How long a start without a usable cache runs before it writes one (ms). */
const PRODUCE_AFTER_MS = 5_000;
/**
 * How much bigger than the cache it used a start's own cache must be for it to be written
 * (refreshLater): more compiled than a run's small differences, so starts do not take turns
 * rewriting it.
 */
const REFRESH_GROWTH = 1.05;
const KEY_BYTES = 20;
/** CommonJS's wrapper: the bundle's code sees what a required file would see. */
const WRAP = ['(function (exports, require, module, __filename, __dirname) {', '\n})'];

/** The key of a cache for `code` whose V8 data is `data`, on this Node. */
function cacheKey(code, data) {
  return createHash('sha1')
    .update(`${process.version} ${process.arch}\n`)
    .update(code)
    .update(data)
    .digest();
}

/** The V8 data of `cacheFile` if its key says it was made from `code` here, else undefined. */
export function readCache(cacheFile, code) {
  let bytes;
  try {
    bytes = readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  if (bytes.length <= KEY_BYTES) return undefined;
  const data = bytes.subarray(KEY_BYTES);
  return cacheKey(code, data).equals(bytes.subarray(0, KEY_BYTES)) ? data : undefined;
}

/** Writes `data` as `cacheFile` for `code`, whole or not at all (a rename); false if it could not. */
export function writeCache(cacheFile, code, data) {
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, Buffer.concat([cacheKey(code, data), data]));
    renameSync(tmp, cacheFile);
    return true;
  } catch {
    rmSync(tmp, { force: true });
    return false;
  }
}

/**
 * Hands `write` a cache for `script` once it has run PRODUCE_AFTER_MS (or at exit, if sooner),
 * with every function compiled by then. V8 refuses a cache made under other flags than its
 * consumer's, so a program that changes V8's flags (MajorDomo: heap growth, expose-gc, through
 * v8.setFlagsFromString) gets the cache as it was just before its first change (its modules
 * loaded, its start begun), else (flags changed some other way) as before the run: top-level code
 * only. Whether the flags changed is asked of V8: it refuses a probe's cache made at start.
 * @param {vm.Script} script @param {(data: Buffer) => void} write
 */
function produceLater(script, write) {
  // Two sources of one length: V8 checks a cache's source by its length, and a second compile of
  // the same text would come from V8's in-memory cache without checking the flags.
  const probe = new vm.Script("'code-cache probe 1'").createCachedData();
  const beforeRun = script.createCachedData();
  const atFlagChange = beforeFlagChange(script);
  let done = false;
  const produce = () => {
    if (done) return;
    done = true;
    process.off('exit', produce);
    const sameFlags = !new vm.Script("'code-cache probe 2'", { cachedData: probe })
      .cachedDataRejected;
    write(sameFlags ? script.createCachedData() : (atFlagChange() ?? beforeRun));
  };
  setTimeout(produce, PRODUCE_AFTER_MS).unref();
  process.on('exit', produce);
}

/**
 * The cache of `script` as it was when the program first called v8.setFlagsFromString (which
 * this wraps: the bundle reads it from node:v8 at each call), or undefined before that.
 * @param {vm.Script} script @returns {() => Buffer | undefined}
 */
function beforeFlagChange(script, onChange = () => undefined) {
  const set = v8.setFlagsFromString;
  let data;
  v8.setFlagsFromString = (flags) => {
    if (data === undefined) {
      data = script.createCachedData();
      onChange(data);
    }
    set(flags);
  };
  return () => data;
}

/**
 * After a start that used a cache of `usedBytes`: hands `write` the cache of `script` as it is
 * when the program first changes V8's flags (MajorDomo: once it is ready), or else once it has run
 * PRODUCE_AFTER_MS, if it is REFRESH_GROWTH times as big: this run compiled code the cache did not
 * hold. Nothing at exit: a short run (a command-line tool) would pay for a cache at every run.
 * @param {vm.Script} script @param {number} usedBytes @param {(data: Buffer) => void} write
 */
function refreshLater(script, usedBytes, write) {
  let done = false;
  const offer = (data) => {
    if (done) return;
    done = true;
    if (data.length >= usedBytes * REFRESH_GROWTH) write(data);
  };
  const atFlagChange = beforeFlagChange(script, offer);
  setTimeout(() => {
    if (atFlagChange() === undefined) offer(script.createCachedData());
  }, PRODUCE_AFTER_MS).unref();
}

/**
 * Compiles and runs the CommonJS bundle at `codeUrl` with its code cache; returns whether a
 * cache was used (`'used'`), refused by V8 (`'rejected'`) or absent (`'none'`).
 * @param {URL} codeUrl
 */
export function runCached(codeUrl) {
  const file = fileURLToPath(codeUrl);
  const cacheFile = `${file}.v8cache`;
  const code = readFileSync(file);
  const cachedData = readCache(cacheFile, code);
  // Decoding ASCII as Latin-1 is a copy; UTF-8's decoder takes several times as long.
  const text = code.toString(isAscii(code) ? 'latin1' : 'utf8');
  const script = new vm.Script(`${WRAP[0]}${text}${WRAP[1]}`, {
    filename: file,
    cachedData,
  });
  const cache = cachedData ? (script.cachedDataRejected ? 'rejected' : 'used') : 'none';
  const write = (data) => writeCache(cacheFile, code, data);
  if (cache !== 'used') produceLater(script, write);
  else refreshLater(script, cachedData.length, write);
  const module = { exports: {} };
  script
    .runInThisContext()
    .call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  return cache;
}

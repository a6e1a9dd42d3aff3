/**
 * The code of the I/O workers, as CommonJS strings for `new Worker(src, { eval: true })`.
 * Strings rather than a .ts file because a worker does not inherit the TypeScript loader
 * of tsx or vitest; this way the same code runs everywhere.
 *
 * Everything here uses synchronous fs calls on purpose: inside a worker they block only the
 * worker, and they cost a third of their async counterparts (no threadpool hop, no promise
 * per call), which is what lets a stat walk of 100k files keep pace with `find`.
 */

/**
 * The look at one path (`check`, and `hashPath` behind it), given `fs` and `crypto` in scope:
 * run by the workers, and for a few small files by the event loop's thread (look-here.ts).
 */
export const LOOK_SOURCE = `
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK || 0);
// A file this small is read at once where a rename is only probed: reading it costs less
// than a second look.
const PROBE_READ_MAX = 65536n;
let buf = null;

function errno(e) { return (e && e.code) || String(e); }
function statOf(st) { return [st.mtimeNs, st.ctimeNs, st.size, st.ino]; }
// Past maxBytes (when given) nothing is read: 'large', for the caller to have it read elsewhere.
function hashPath(path, bufSize, maxBytes) {
  let fd;
  try { fd = fs.openSync(path, OPEN_FLAGS); }
  catch (e) { return e.code === 'ENOENT' || e.code === 'ENOTDIR' ? { kind: 'missing' } : { kind: 'error', errno: errno(e) }; }
  try {
    // Taken before the stat: a stamp is racy if its ctime is within the clock granularity of this.
    const verifiedNs = BigInt(Date.now()) * 1000000n;
    const a = fs.fstatSync(fd, { bigint: true });
    if (!a.isFile()) return { kind: 'other' };
    if (maxBytes !== undefined && a.size > BigInt(maxBytes)) return { kind: 'large' };
    if (!buf || buf.length < bufSize) buf = Buffer.allocUnsafe(bufSize);
    const h = crypto.createHash('sha256');
    // Read exactly the size fstat gave: no extra read to meet EOF (half the syscalls for a
    // small file). Growth or shrinkage meanwhile shows in the second fstat: 'unstable'.
    const size = Number(a.size);
    let bytes = 0;
    while (bytes < size) {
      const n = fs.readSync(fd, buf, 0, Math.min(bufSize, size - bytes), null);
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
      bytes += n;
    }
    const b = fs.fstatSync(fd, { bigint: true });
    const stable = a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.size === b.size && BigInt(bytes) === a.size;
    return { kind: stable ? 'hashed' : 'unstable', stat: statOf(a), sha256: h.digest('hex'), verifiedNs, bytes };
  } catch (e) {
    return { kind: 'error', errno: errno(e) };
  } finally {
    fs.closeSync(fd);
  }
}

// item: { path, expect: [mtimeNs, ctimeNs, size, ino] | null, force, probe, maxBytes }
// A probe (a path never seen: maybe a file renamed) only lstats a file bigger than
// PROBE_READ_MAX, so a rename is recognised before a big file is read.
function check(item, bufSize) {
  const verifiedNs = BigInt(Date.now()) * 1000000n;
  let st;
  try { st = fs.lstatSync(item.path, { bigint: true, throwIfNoEntry: false }); }
  catch (e) { return e.code === 'ENOTDIR' ? { kind: 'missing' } : { kind: 'error', errno: errno(e) }; }
  if (st === undefined) return { kind: 'missing' };
  if (st.isDirectory()) return { kind: 'dir' };
  if (!st.isFile()) return { kind: 'other' };
  if (item.probe && st.size > PROBE_READ_MAX) return { kind: 'probe', stat: statOf(st), verifiedNs };
  const x = item.expect;
  if (x && !item.force && st.mtimeNs === x[0] && st.ctimeNs === x[1] && st.size === x[2] && st.ino === x[3]) {
    return { kind: 'same', stat: statOf(st) };
  }
  return hashPath(item.path, bufSize, item.maxBytes);
}
`;

export const WORKER_SOURCE = `'use strict';
const fs = require('node:fs');
const crypto = require('node:crypto');
const { parentPort } = require('node:worker_threads');
${LOOK_SOURCE}
// Regular files come back sorted (the stamp file's order, so a restart can compare a whole
// directory's names with one string comparison) with their stats; other entries separately,
// kinds 2 directory, 3 symlink, 4 other. Every entry is lstat'ed anyway, so readdir without
// file types (no Dirent objects); names travel NUL-joined, far cheaper to copy between
// threads than an array of strings.
function scanDir(dir) {
  let names;
  try { names = fs.readdirSync(dir); }
  catch (e) { return { errno: errno(e) }; }
  names.sort();
  const n = names.length;
  const files = [];
  const others = [];
  const otherKinds = new Uint8Array(n);
  const stats = new BigInt64Array(n * 4);
  let f = 0;
  for (let i = 0; i < n; i++) {
    let st;
    try { st = fs.lstatSync(dir + '/' + names[i], { bigint: true, throwIfNoEntry: false }); }
    catch { st = undefined; }
    if (st === undefined) continue;
    if (st.isFile()) {
      stats[f * 4] = st.mtimeNs; stats[f * 4 + 1] = st.ctimeNs; stats[f * 4 + 2] = st.size; stats[f * 4 + 3] = st.ino;
      files.push(names[i]);
      f++;
    } else {
      otherKinds[others.length] = st.isDirectory() ? 2 : st.isSymbolicLink() ? 3 : 4;
      others.push(names[i]);
    }
  }
  return {
    files: files.join('\0'), fileCount: f, stats: stats.slice(0, f * 4),
    others: others.join('\0'), otherCount: others.length, otherKinds: otherKinds.slice(0, others.length),
  };
}

parentPort.on('message', (m) => {
  try {
    if (m.op === 'check') {
      parentPort.postMessage({ id: m.id, result: m.items.map((it) => check(it, m.bufSize)) });
    } else if (m.op === 'hash') {
      parentPort.postMessage({ id: m.id, result: hashPath(m.path, m.bufSize) });
    } else if (m.op === 'scan') {
      const result = m.dirs.map(scanDir);
      const transfer = [];
      for (const r of result) if (r.stats) transfer.push(r.stats.buffer, r.otherKinds.buffer);
      parentPort.postMessage({ id: m.id, result }, transfer);
    } else {
      parentPort.postMessage({ id: m.id, error: 'unknown op ' + m.op });
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.stack) || e) });
  }
});
`;

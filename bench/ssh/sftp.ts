// SFTP throughput for pnpm bench ssh: our transport's real code paths against OpenSSH's
// `sftp -b` on the same sshd, key, files and run. Cases:
//   - one big file (default 1 GiB) up and down;
//   - many small files (default 10,000 x 4 KiB) up and down.
// Ours: uploads through inotify2nats' uploadBatch (what the watcher uses for every upload) and
// executors' uploadTree; downloads through downloadFiles (the chef's fetch-inputs since 19bb1e6:
// a pod's inputs as one batch, checked against the planned hashes), downloadFile (executors; the
// chef's per-input fetch before, measured here as the old code) and downloadTree (executors). Every one of ours verifies SHA-256 (local hash + the pod's
// sha256sum) and renames into place; sftp verifies nothing. Each timing of ours starts from a
// new SshPool (cold: connect + auth counted), as each `sftp` run connects anew.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sshd } from '@computepods/testkit';
import {
  downloadFile,
  downloadFiles,
  downloadTree,
  SshPool,
  sftpOps,
  uploadTree,
} from '@computepods/transport';
import { uploadBatch } from '../../apps/inotify2nats/src/batch-upload.js';
import { table } from '../lib/report.js';

const GiB = 1024 ** 3;
const BIG_WANTED = Number(process.env.BENCH_SFTP_BIG_BYTES ?? GiB);
const SMALL_N = Number(process.env.BENCH_SFTP_SMALL_N ?? 10_000);
const SMALL_SIZE = Number(process.env.BENCH_SFTP_SMALL_BYTES ?? 4096);
/** Timings per case; the best (shortest) is reported, ours and sftp alternating. */
const REPEATS = Number(process.env.BENCH_SFTP_REPEATS ?? 2);
/** Files in flight: inotify2nats' `uploads` default and the tree transfers' default. */
const OUR_CONCURRENCY = 4;
/**
 * Small-file downloads with one downloadFile per file, as chef fetches inputs: one at a time
 * (chef before 15de5c2) and CHEF_CONCURRENCY at a time (services/chef/src/build.ts'
 * FS_CONCURRENCY since); on CHEF_FILES files, then scaled to SMALL_N.
 */
const CHEF_FILES = Number(process.env.BENCH_SFTP_CHEF_FILES ?? 2_000);
const CHEF_CONCURRENCY = 8;
/** downloadFiles' default: files in flight on its one session. */
const BATCH_CONCURRENCY = 32;
const GOAL_BIG = 0.8;
/** OpenSSH sftp's own pipelining: -R 64 requests, each as long as the server's limits allow. */
const SFTP_PIPELINE = "1 file; 64 requests (sftp's -R), server-sized";
const GOAL_SMALL = 1.25;

type Figures = Record<string, number | string | boolean>;

const noop = () => undefined;

/** The temp dir on the filesystem with the most free space. */
function roomiest(): { dir: string; free: number } {
  const candidates = [...new Set([tmpdir(), '/var/tmp', process.cwd()])];
  let best = { dir: tmpdir(), free: 0 };
  for (const dir of candidates) {
    try {
      const s = statfsSync(dir);
      const free = s.bavail * s.bsize;
      if (free > best.free) best = { dir, free };
    } catch {
      // not there
    }
  }
  return best;
}

function writeRandom(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const block = randomBytes(Math.min(bytes, 1 << 20));
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(block.length, bytes - done);
      writeSync(fd, block, 0, n);
      // A fresh block each MiB: no dedupe or compression anywhere can help either side.
      randomBytes(block.length).copy(block);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** Writes back dirty pages so one case's writes do not slow the next one's. */
function sync(): void {
  spawnSync('sync');
}

/** One timing of run, after prepare and a sync, checked afterwards; in ms. */
async function timeOnce(
  prepare: () => void,
  check: () => void,
  run: () => Promise<unknown>,
): Promise<number> {
  prepare();
  sync();
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  check();
  return ms;
}

export async function sftpBench(sshd: Sshd): Promise<Figures> {
  const target = sshd.target();
  const user = sshd.users[0]!;
  const { dir: base, free } = roomiest();
  // Source, our copy and sftp's copy of the big file, with room to spare.
  const bigBytes = Math.min(BIG_WANTED, Math.floor(free / 6 / (1 << 20)) * (1 << 20));
  const scaled = bigBytes < BIG_WANTED;
  if (bigBytes < 16 << 20) throw new Error(`only ${free} bytes free under ${base}`);
  const work = mkdtempSync(join(base, 'cp-bench-sftp-'));
  chmodSync(work, 0o755);
  const local = join(work, 'local');
  const remote = join(work, 'remote'); // written by the sshd user
  mkdirSync(local);
  mkdirSync(remote);
  chownSync(remote, user.uid, user.gid);
  const sshOpts = [
    ...['-P', String(sshd.port), '-i', target.privateKeyPath],
    ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes'],
    ...['-o', `UserKnownHostsFile=${target.knownHostsPath}`, '-o', 'LogLevel=ERROR'],
  ];
  const sftp = async (batch: string): Promise<void> => {
    const file = join(work, 'batch');
    writeFileSync(file, batch);
    const r = spawnSync('sftp', ['-q', '-b', file, ...sshOpts, `${user.username}@127.0.0.1`], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`sftp failed (${r.status}): ${r.stderr}`);
  };
  /** A new pool per timing: connect and auth are inside it, as for each sftp run. */
  const cold = async (fn: (pool: SshPool) => Promise<unknown>): Promise<void> => {
    const pool = new SshPool({ minOpenIntervalMs: 0 });
    try {
      await fn(pool);
    } finally {
      await pool.close();
    }
  };
  const rmrf =
    (...paths: string[]) =>
    () => {
      for (const p of paths) rmSync(p, { recursive: true, force: true });
    };
  const mine = (p: string) => {
    mkdirSync(p, { recursive: true });
    chownSync(p, user.uid, user.gid);
  };

  try {
    // --- files
    const bigLocal = join(local, 'big.bin');
    writeRandom(bigLocal, bigBytes);
    const smallLocal = join(local, 'small');
    mkdirSync(smallLocal);
    const names: string[] = [];
    const smallSha = new Map<string, string>();
    for (let i = 0; i < SMALL_N; i++) {
      const name = `f${String(i).padStart(5, '0')}.bin`;
      const data = randomBytes(SMALL_SIZE);
      writeFileSync(join(smallLocal, name), data);
      smallSha.set(name, createHash('sha256').update(data).digest('hex'));
      names.push(name);
    }
    sync();

    // The connect + auth share of each sftp run, measured on its own.
    const connectMs: number[] = [];
    for (let i = 0; i < 3; i++) connectMs.push(await timeOnce(noop, noop, () => sftp('pwd\n')));
    const sftpConnectMs = Math.min(...connectMs);

    // --- big file, up: inotify2nats' uploadBatch (one item) vs sftp put
    const upDir = join(remote, 'up');
    const freshUpDir = () => {
      rmrf(upDir)();
      mine(upDir);
    };
    const checkUp = () => {
      const size = statSync(join(upDir, 'big.bin')).size;
      if (size !== bigBytes) throw new Error(`uploaded ${size} bytes of ${bigBytes}`);
    };
    const bigUpOurs: number[] = [];
    const bigUpSftp: number[] = [];
    const bigUpRaw: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      bigUpOurs.push(
        await timeOnce(freshUpDir, checkUp, () =>
          cold((pool) =>
            uploadBatch([{ rel: 'big.bin', local: bigLocal, mode: 0o644 }], {
              pool,
              target,
              root: upDir,
              concurrency: OUR_CONCURRENCY,
              prepareDir: async () => undefined,
              onFileError: () => false,
            }),
          ),
        ),
      );
      bigUpSftp.push(
        await timeOnce(freshUpDir, checkUp, () => sftp(`put ${bigLocal} ${upDir}/big.bin\n`)),
      );
      // Reference: the SFTP part alone, unverified and straight to the name, as sftp does.
      bigUpRaw.push(
        await timeOnce(freshUpDir, checkUp, () =>
          cold((pool) =>
            pool.sftp(target, (s) => sftpOps.fastPut(s, bigLocal, `${upDir}/big.bin`, 0o644)),
          ),
        ),
      );
    }
    rmrf(upDir)();

    // --- big file, down: downloadFile (chef's fetch-inputs, executors) vs sftp get
    const srcDir = join(remote, 'src');
    mine(srcDir);
    spawnSync('cp', [bigLocal, join(srcDir, 'big.bin')]);
    chownSync(join(srcDir, 'big.bin'), user.uid, user.gid);
    const downDir = join(local, 'down');
    const bigDownOurs: number[] = [];
    const bigDownSftp: number[] = [];
    const bigDownRaw: number[] = [];
    const checkBig = () => {
      const size = statSync(join(downDir, 'big.bin')).size;
      if (size !== bigBytes) throw new Error(`downloaded ${size} bytes of ${bigBytes}`);
    };
    for (let i = 0; i < REPEATS; i++) {
      const fresh = () => {
        rmrf(downDir)();
        mkdirSync(downDir);
      };
      fresh();
      sync();
      let t0 = performance.now();
      await cold((pool) =>
        downloadFile(pool, target, `${srcDir}/big.bin`, join(downDir, 'big.bin')),
      );
      bigDownOurs.push(performance.now() - t0);
      checkBig();
      fresh();
      sync();
      t0 = performance.now();
      await sftp(`get ${srcDir}/big.bin ${downDir}/big.bin\n`);
      bigDownSftp.push(performance.now() - t0);
      checkBig();
      fresh();
      sync();
      t0 = performance.now();
      await cold((pool) =>
        pool.sftp(target, (s) => sftpOps.fastGet(s, `${srcDir}/big.bin`, join(downDir, 'big.bin'))),
      );
      bigDownRaw.push(performance.now() - t0);
      checkBig();
      fresh();
    }
    rmrf(join(srcDir, 'big.bin'), downDir)();

    // --- small files, up
    const smallUp = join(remote, 'small-up');
    const items = names.map((n) => ({ rel: n, local: join(smallLocal, n), mode: 0o644 }));
    const batchUp = (concurrency: number) => () =>
      cold(async (pool) => {
        await uploadBatch(items, {
          pool,
          target,
          root: smallUp,
          concurrency,
          prepareDir: async () => undefined,
          onFileError: () => false,
        });
      });
    const freshUp = () => {
      rmrf(smallUp)();
      mine(smallUp);
    };
    const countUp = () => {
      const n = readdirSync(smallUp).length;
      if (n !== SMALL_N) throw new Error(`${n} of ${SMALL_N} small files arrived`);
    };
    const smallUpTimes = {
      batchSeq: [] as number[],
      batchConc: [] as number[],
      sftp: [] as number[],
    };
    const smallTreeUp: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      for (const [key, run] of [
        ['batchSeq', batchUp(1)],
        ['batchConc', batchUp(OUR_CONCURRENCY)],
        ['sftp', () => sftp(`put ${smallLocal}/* ${smallUp}/\n`)],
      ] as const) {
        freshUp();
        sync();
        const t0 = performance.now();
        await run();
        smallUpTimes[key].push(performance.now() - t0);
        countUp();
      }
      // uploadTree makes its own destination (temp dir, then rename).
      rmrf(smallUp)();
      sync();
      const t0 = performance.now();
      await cold((pool) => uploadTree(pool, target, smallLocal, smallUp));
      smallTreeUp.push(performance.now() - t0);
      countUp();
    }

    // --- small files, down (from the tree uploadTree left)
    chownSync(smallUp, user.uid, user.gid);
    const smallDown = join(local, 'small-down');
    const freshDown = () => rmrf(smallDown)();
    const countDown = (n = SMALL_N) => {
      const got = readdirSync(smallDown).length;
      if (got !== n) throw new Error(`${got} of ${n} small files downloaded`);
    };
    const smallDownTimes = {
      treeSeq: [] as number[],
      treeConc: [] as number[],
      sftp: [] as number[],
      batch: [] as number[],
    };
    const chefN = Math.min(CHEF_FILES, SMALL_N);
    const chefTimes: number[] = [];
    const chefConcTimes: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      for (const [key, run] of [
        [
          'treeSeq',
          () => cold((pool) => downloadTree(pool, target, smallUp, smallDown, { concurrency: 1 })),
        ],
        [
          'treeConc',
          () =>
            cold((pool) =>
              downloadTree(pool, target, smallUp, smallDown, { concurrency: OUR_CONCURRENCY }),
            ),
        ],
        [
          'sftp',
          async () => {
            mkdirSync(smallDown);
            await sftp(`get ${smallUp}/* ${smallDown}/\n`);
          },
        ],
        // The chef's fetch: every file checked against the hash MajorDomo planned with.
        [
          'batch',
          () =>
            cold(async (pool) => {
              const out = await downloadFiles(
                pool,
                target,
                smallUp,
                names.map((n) => ({ rel: n, local: join(smallDown, n), sha256: smallSha.get(n) })),
              );
              const bad = out.filter((o) => o.status !== 'fetched');
              if (bad.length) throw new Error(`downloadFiles: ${JSON.stringify(bad[0])}`);
            }),
        ],
      ] as const) {
        freshDown();
        sync();
        const t0 = performance.now();
        await run();
        smallDownTimes[key].push(performance.now() - t0);
        countDown();
      }
      // chef: one downloadFile per input, one after another, on one pool.
      freshDown();
      mkdirSync(smallDown);
      sync();
      const t0 = performance.now();
      await cold(async (pool) => {
        for (const n of names.slice(0, chefN))
          await downloadFile(pool, target, `${smallUp}/${n}`, join(smallDown, n));
      });
      chefTimes.push(performance.now() - t0);
      countDown(chefN);
      freshDown();
      mkdirSync(smallDown);
      sync();
      const t1 = performance.now();
      await cold(async (pool) => {
        let next = 0;
        await Promise.all(
          Array.from({ length: CHEF_CONCURRENCY }, async () => {
            for (let k = next++; k < chefN; k = next++)
              await downloadFile(
                pool,
                target,
                `${smallUp}/${names[k]}`,
                join(smallDown, names[k]!),
              );
          }),
        );
      });
      chefConcTimes.push(performance.now() - t1);
      countDown(chefN);
    }
    freshDown();

    // --- report
    const min = (a: number[]) => Math.min(...a) / 1000;
    const mb = (bytes: number, s: number) => bytes / 1e6 / s;
    const smallBytes = SMALL_N * SMALL_SIZE;
    const r = {
      bigUpOurs: min(bigUpOurs),
      bigUpSftp: min(bigUpSftp),
      bigDownOurs: min(bigDownOurs),
      bigDownSftp: min(bigDownSftp),
      bigUpRaw: min(bigUpRaw),
      bigDownRaw: min(bigDownRaw),
      smallUpSeq: min(smallUpTimes.batchSeq),
      smallUpConc: min(smallUpTimes.batchConc),
      smallUpTree: min(smallTreeUp),
      smallUpSftp: min(smallUpTimes.sftp),
      smallDownSeq: min(smallDownTimes.treeSeq),
      smallDownConc: min(smallDownTimes.treeConc),
      smallDownSftp: min(smallDownTimes.sftp),
      chefBatch: min(smallDownTimes.batch),
      chef: min(chefTimes),
      chefConc: min(chefConcTimes),
    };
    const chefScaled = (r.chef / chefN) * SMALL_N;
    const chefConcScaled = (r.chefConc / chefN) * SMALL_N;
    const big = `${(bigBytes / GiB).toFixed(bigBytes >= GiB ? 0 : 3)} GiB`;
    const small = `${SMALL_N} x ${SMALL_SIZE} B`;
    const row = (
      what: string,
      how: string,
      bytes: number,
      s: number,
      vs: number,
    ): (string | number)[] => [what, how, s, mb(bytes, s), s / vs];
    table(
      `sftp: ours (cold pool, SHA-256 verified, temp name + rename) vs OpenSSH sftp -b (cold, unverified); best of ${REPEATS}`,
      ['case', 'concurrency (files in flight)', 's', 'MB/s', 'time ours/sftp'],
      [
        row(
          `${big} up, ours uploadBatch`,
          '1 file; 64 x 32 KiB requests',
          bigBytes,
          r.bigUpOurs,
          r.bigUpSftp,
        ),
        row(
          `${big} up, ours fastPut only (unverified)`,
          '1 file; 64 x 32 KiB requests',
          bigBytes,
          r.bigUpRaw,
          r.bigUpSftp,
        ),
        row(`${big} up, sftp put`, SFTP_PIPELINE, bigBytes, r.bigUpSftp, r.bigUpSftp),
        row(
          `${big} down, ours downloadFile`,
          '1 file; 64 x 255 KiB requests',
          bigBytes,
          r.bigDownOurs,
          r.bigDownSftp,
        ),
        row(
          `${big} down, ours fastGet only (unverified)`,
          '1 file; 64 x 255 KiB requests',
          bigBytes,
          r.bigDownRaw,
          r.bigDownSftp,
        ),
        row(`${big} down, sftp get`, SFTP_PIPELINE, bigBytes, r.bigDownSftp, r.bigDownSftp),
        row(
          `${small} up, ours uploadBatch`,
          '1 (sequential)',
          smallBytes,
          r.smallUpSeq,
          r.smallUpSftp,
        ),
        row(
          `${small} up, ours uploadBatch`,
          `${OUR_CONCURRENCY} (inotify2nats default)`,
          smallBytes,
          r.smallUpConc,
          r.smallUpSftp,
        ),
        row(
          `${small} up, ours uploadTree`,
          `${OUR_CONCURRENCY} (default)`,
          smallBytes,
          r.smallUpTree,
          r.smallUpSftp,
        ),
        row(
          `${small} up, sftp put dir/*`,
          '1 (sequential)',
          smallBytes,
          r.smallUpSftp,
          r.smallUpSftp,
        ),
        row(
          `${small} down, ours downloadTree`,
          '1 (sequential)',
          smallBytes,
          r.smallDownSeq,
          r.smallDownSftp,
        ),
        row(
          `${small} down, ours downloadTree`,
          `${OUR_CONCURRENCY} (default)`,
          smallBytes,
          r.smallDownConc,
          r.smallDownSftp,
        ),
        row(
          `${small} down, ours downloadFiles (chef now)`,
          `${BATCH_CONCURRENCY} (one SFTP session)`,
          smallBytes,
          r.chefBatch,
          r.smallDownSftp,
        ),
        row(
          `${small} down, ours downloadFile each (chef before)`,
          `1 (x${(SMALL_N / chefN).toFixed(1)} extrapolated)`,
          smallBytes,
          chefScaled,
          r.smallDownSftp,
        ),
        row(
          `${small} down, ours downloadFile each (chef before)`,
          `${CHEF_CONCURRENCY} (x${(SMALL_N / chefN).toFixed(1)} extrapolated)`,
          smallBytes,
          chefConcScaled,
          r.smallDownSftp,
        ),
        row(
          `${small} down, sftp get dir/*`,
          '1 (sequential)',
          smallBytes,
          r.smallDownSftp,
          r.smallDownSftp,
        ),
      ],
    );
    const ratioBigUp = mb(bigBytes, r.bigUpOurs) / mb(bigBytes, r.bigUpSftp);
    const ratioBigDown = mb(bigBytes, r.bigDownOurs) / mb(bigBytes, r.bigDownSftp);
    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    console.log(
      `\ngoals (reported, not asserted): big file >= ${GOAL_BIG}x sftp's MB/s: up ${ratioBigUp.toFixed(2)}x ${verdict(ratioBigUp >= GOAL_BIG)}, down ${ratioBigDown.toFixed(2)}x ${verdict(ratioBigDown >= GOAL_BIG)}` +
        `; ${SMALL_N} small files <= ${GOAL_SMALL}x sftp's time: up (uploadBatch, ${OUR_CONCURRENCY} in flight) ${(r.smallUpConc / r.smallUpSftp).toFixed(2)}x ${verdict(r.smallUpConc / r.smallUpSftp <= GOAL_SMALL)}, sequential ${(r.smallUpSeq / r.smallUpSftp).toFixed(2)}x; down (downloadTree, ${OUR_CONCURRENCY}) ${(r.smallDownConc / r.smallDownSftp).toFixed(2)}x, sequential ${(r.smallDownSeq / r.smallDownSftp).toFixed(2)}x, the chef's batch (downloadFiles) ${(r.chefBatch / r.smallDownSftp).toFixed(2)}x ${verdict(r.chefBatch / r.smallDownSftp <= GOAL_SMALL)}, before it one downloadFile per file ${(chefScaled / r.smallDownSftp).toFixed(2)}x, ${CHEF_CONCURRENCY} at a time ${(chefConcScaled / r.smallDownSftp).toFixed(2)}x` +
        `; the SFTP part alone (fastPut/fastGet, unverified): up ${(r.bigUpSftp / r.bigUpRaw).toFixed(2)}x, down ${(r.bigDownSftp / r.bigDownRaw).toFixed(2)}x sftp's MB/s` +
        (scaled
          ? `; big file scaled down to ${bigBytes} bytes for disk space (MB/s extrapolates)`
          : '') +
        `; sftp's connect + auth alone: ${sftpConnectMs.toFixed(0)} ms per run`,
    );

    return {
      sftpWorkDir: base,
      sftpFreeBytesAtStart: free,
      sftpRepeats: REPEATS,
      sftpOurConcurrency: OUR_CONCURRENCY,
      sftpColdConnections: true,
      sftpOursVerifiedSha256: true,
      sftpOursVerifiedBy:
        'local SHA-256 in node + the pod hashing (openssl dgst, else sha256sum) + rename; sftp: none',
      sftpConcurrency:
        'sftp: files one by one, 64 requests in flight per file; ours: up 64 x 32 KiB write requests per file (a file of up to 64 KiB in one write), down 64 x 255 KiB read requests per file; files 1 or 4 in flight on one SFTP session as labelled',
      sftpConnectAuthMs: sftpConnectMs,
      bigBytes,
      bigScaledDown: scaled,
      bigUpOursS: r.bigUpOurs,
      bigUpOursMBps: mb(bigBytes, r.bigUpOurs),
      bigUpSftpS: r.bigUpSftp,
      bigUpSftpMBps: mb(bigBytes, r.bigUpSftp),
      bigUpThroughputRatio: ratioBigUp,
      bigUpGoalMet: ratioBigUp >= GOAL_BIG,
      bigDownOursS: r.bigDownOurs,
      bigDownOursMBps: mb(bigBytes, r.bigDownOurs),
      bigDownSftpS: r.bigDownSftp,
      bigDownSftpMBps: mb(bigBytes, r.bigDownSftp),
      bigDownThroughputRatio: ratioBigDown,
      // the SFTP part alone (ssh2 fastPut/fastGet, no hashing, no temp name): like for like
      bigUpRawOursS: r.bigUpRaw,
      bigUpRawOursMBps: mb(bigBytes, r.bigUpRaw),
      bigUpRawThroughputRatio: r.bigUpSftp / r.bigUpRaw,
      bigDownRawOursS: r.bigDownRaw,
      bigDownRawOursMBps: mb(bigBytes, r.bigDownRaw),
      bigDownRawThroughputRatio: r.bigDownSftp / r.bigDownRaw,
      bigDownGoalMet: ratioBigDown >= GOAL_BIG,
      smallFiles: SMALL_N,
      smallFileBytes: SMALL_SIZE,
      smallUpOursSeqS: r.smallUpSeq,
      smallUpOursSeqMBps: mb(smallBytes, r.smallUpSeq),
      smallUpOursConcS: r.smallUpConc,
      smallUpOursConcMBps: mb(smallBytes, r.smallUpConc),
      smallUpOursTreeConcS: r.smallUpTree,
      smallUpSftpS: r.smallUpSftp,
      smallUpSftpMBps: mb(smallBytes, r.smallUpSftp),
      smallUpTimeRatioSeq: r.smallUpSeq / r.smallUpSftp,
      smallUpTimeRatioConc: r.smallUpConc / r.smallUpSftp,
      smallUpTimeRatioTreeConc: r.smallUpTree / r.smallUpSftp,
      smallUpGoalMet: r.smallUpConc / r.smallUpSftp <= GOAL_SMALL,
      smallDownOursTreeSeqS: r.smallDownSeq,
      smallDownOursTreeConcS: r.smallDownConc,
      smallDownOursTreeConcMBps: mb(smallBytes, r.smallDownConc),
      smallDownSftpS: r.smallDownSftp,
      smallDownSftpMBps: mb(smallBytes, r.smallDownSftp),
      smallDownTimeRatioTreeSeq: r.smallDownSeq / r.smallDownSftp,
      smallDownTimeRatioTreeConc: r.smallDownConc / r.smallDownSftp,
      smallDownGoalMet: r.smallDownConc / r.smallDownSftp <= GOAL_SMALL,
      smallDownChefBatchS: r.chefBatch,
      smallDownChefBatchConcurrency: BATCH_CONCURRENCY,
      smallDownChefBatchMBps: mb(smallBytes, r.chefBatch),
      smallDownTimeRatioChefBatch: r.chefBatch / r.smallDownSftp,
      smallDownChefBatchGoalMet: r.chefBatch / r.smallDownSftp <= GOAL_SMALL,
      smallDownChefBatchSpeedupOverPerFile: chefScaled / r.chefBatch,
      smallDownChefBatchSpeedupOverPerFileConc: chefConcScaled / r.chefBatch,
      smallDownChefMeasuredFiles: chefN,
      smallDownChefMeasuredS: r.chef,
      smallDownChefS: chefScaled,
      smallDownChefExtrapolated: chefN < SMALL_N,
      smallDownTimeRatioChef: chefScaled / r.smallDownSftp,
      smallDownChefConcurrency: CHEF_CONCURRENCY,
      smallDownChefConcMeasuredS: r.chefConc,
      smallDownChefConcS: chefConcScaled,
      smallDownTimeRatioChefConc: chefConcScaled / r.smallDownSftp,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

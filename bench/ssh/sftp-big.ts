// The SFTP bench's big file (default 1 GiB), up and down: ours (SHA-256 verified, temp name +
// rename) and ssh2's fastPut/fastGet alone (unverified, like for like with sftp) against OpenSSH
// `sftp -b`, alternating, each from a cold connection. Besides wall time, the client side's CPU
// seconds: this process (ssh2, the hashing thread, Node's file-system threads) against sftp and
// its ssh child. On a 2-core machine the transfer is CPU-bound, so that is where a gap shows.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, createReadStream, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { downloadFile, downloadFiles, sftpOps, uploadFile } from '@computepods/transport';
import { uploadBatch } from '../../apps/inotify2nats/src/batch-upload.js';
import { table } from '../lib/report.js';
import {
  type Figures,
  GiB,
  mb,
  REPEATS,
  type SftpKit,
  summary,
  type Timed,
  timeWithCpu,
} from './sftp-kit.js';

const GOAL_BIG = 0.8;
/** Files in flight: inotify2nats' `uploads` default. */
const OUR_CONCURRENCY = 4;
/** OpenSSH sftp's own pipelining: -R 64 requests, each as long as the server's limits allow. */
const SFTP_PIPELINE = "1 file; 64 requests (sftp's -R), server-sized";
/**
 * The cipher ssh2 negotiates here (its native binding, a CPU with AES-NI). OpenSSH's sftp picks
 * chacha20-poly1305@openssh.com by default, dearer on such a CPU; the goal is against that
 * default, and sftp with this cipher is reported beside it as the like-for-like reference.
 */
const SSH2_CIPHER = 'aes128-gcm@openssh.com';

/**
 * The cases in repeat i's order: reversed every other repeat, so that no case always runs first
 * or after the same neighbour. A fixed-order run (best of 2) had once put an earlier exec path
 * of downloadFile at 0.98x sftp's throughput, and alternated rounds at 0.56-0.70x.
 */
function inTurn<T>(cases: readonly T[], i: number): readonly T[] {
  return i % 2 === 0 ? cases : [...cases].reverse();
}

export async function bigFileBench(
  kit: SftpKit,
  bigLocal: string,
  bigBytes: number,
  scaled: boolean,
): Promise<Figures> {
  const { target } = kit;
  // --- up: inotify2nats' uploadBatch (one item) vs sftp put
  const upDir = join(kit.remote, 'up');
  const freshUpDir = () => {
    kit.rmrf(upDir)();
    kit.mine(upDir);
  };
  const checkUp = () => {
    const size = statSync(join(upDir, 'big.bin')).size;
    if (size !== bigBytes) throw new Error(`uploaded ${size} bytes of ${bigBytes}`);
  };
  const upOurs: Timed[] = [];
  const upSftp: Timed[] = [];
  const upSftpGcm: Timed[] = [];
  const upRaw: Timed[] = [];
  const upExec: Timed[] = [];
  const upFileSftp: Timed[] = [];
  // transport's uploadFile: streamed over exec into cat, the pod hashing the file once written
  // (the new default for a big file), or its old path, SFTP writes then the pod's hash.
  const upFile = (via: 'exec' | 'sftp') => () =>
    kit.cold((pool) => uploadFile(pool, target, bigLocal, `${upDir}/big.bin`, { via }));
  const upCases: [Timed[], () => Promise<unknown>][] = [
    [upExec, upFile('exec')],
    [
      upOurs,
      () =>
        kit.cold((pool) =>
          uploadBatch([{ rel: 'big.bin', local: bigLocal, mode: 0o644 }], {
            pool,
            target,
            root: upDir,
            concurrency: OUR_CONCURRENCY,
            prepareDir: async () => undefined,
            onFileError: () => false,
          }),
        ),
    ],
    [upSftp, () => kit.sftp(`put ${bigLocal} ${upDir}/big.bin\n`)],
    [upSftpGcm, () => kit.sftp(`put ${bigLocal} ${upDir}/big.bin\n`, SSH2_CIPHER)],
    // Reference: the SFTP part alone, unverified and straight to the name, as sftp does.
    [
      upRaw,
      () =>
        kit.cold((pool) =>
          pool.sftp(target, (s) => sftpOps.fastPut(s, bigLocal, `${upDir}/big.bin`, 0o644)),
        ),
    ],
    [upFileSftp, upFile('sftp')],
  ];
  for (let i = 0; i < REPEATS; i++)
    for (const [runs, run] of inTurn(upCases, i))
      runs.push(await timeWithCpu(freshUpDir, checkUp, run));
  kit.rmrf(upDir)();

  // --- down: downloadFile (executors' job outputs over SSH), both paths, and the chef's input
  // fetch (downloadFiles, hash known), vs sftp get
  const srcDir = join(kit.remote, 'src');
  kit.mine(srcDir);
  const src = join(srcDir, 'big.bin');
  spawnSync('cp', [bigLocal, src]);
  chownSync(src, kit.user.uid, kit.user.gid);
  const downDir = join(kit.local, 'down');
  const dest = join(downDir, 'big.bin');
  const freshDown = () => {
    kit.rmrf(downDir)();
    mkdirSync(downDir);
  };
  const checkDown = () => {
    const size = statSync(dest).size;
    if (size !== bigBytes) throw new Error(`downloaded ${size} bytes of ${bigBytes}`);
  };
  const downOurs: Timed[] = [];
  const downOld: Timed[] = [];
  const downSftp: Timed[] = [];
  const downSftpGcm: Timed[] = [];
  const downRaw: Timed[] = [];
  const downFetch: Timed[] = [];
  // The chef's fetch of an input from another pod (fetch-inputs.ts): downloadFiles with the
  // SHA-256 the build request names, so the pod does not hash the file again.
  const known = createHash('sha256');
  for await (const chunk of createReadStream(bigLocal)) known.update(chunk as Buffer);
  const sha256 = known.digest('hex');
  const fetchInput = () =>
    kit.cold(async (pool) => {
      const [got] = await downloadFiles(pool, target, srcDir, [
        { rel: 'big.bin', local: dest, sha256 },
      ]);
      if (got?.status !== 'fetched') throw new Error(`downloadFiles: ${JSON.stringify(got)}`);
    });
  // transport's downloadFile: streamed out of cat over exec (its default for a big file, since
  // session 29), or its old path, pipelined SFTP reads (via: 'sftp'); the pod hashes the file
  // meanwhile either way.
  const downFile = (via?: 'sftp') => () =>
    kit.cold(async (pool) => {
      const got = await downloadFile(pool, target, src, dest, { via });
      if (got.via !== (via ?? 'exec')) throw new Error(`downloadFile went via ${got.via}`);
    });
  const downCases: [Timed[], () => Promise<unknown>][] = [
    [downOurs, downFile()],
    [downSftp, () => kit.sftp(`get ${src} ${dest}\n`)],
    [downSftpGcm, () => kit.sftp(`get ${src} ${dest}\n`, SSH2_CIPHER)],
    [downOld, downFile('sftp')],
    [downFetch, fetchInput],
    [downRaw, () => kit.cold((pool) => pool.sftp(target, (s) => sftpOps.fastGet(s, src, dest)))],
  ];
  for (let i = 0; i < REPEATS; i++)
    for (const [runs, run] of inTurn(downCases, i))
      runs.push(await timeWithCpu(freshDown, checkDown, run));
  kit.rmrf(src, downDir)();

  // --- report
  const r = {
    upOurs: summary(upOurs),
    upSftp: summary(upSftp),
    upSftpGcm: summary(upSftpGcm),
    upRaw: summary(upRaw),
    upExec: summary(upExec),
    upFileSftp: summary(upFileSftp),
    downOurs: summary(downOurs),
    downOld: summary(downOld),
    downSftp: summary(downSftp),
    downSftpGcm: summary(downSftpGcm),
    downRaw: summary(downRaw),
    downFetch: summary(downFetch),
  };
  const big = `${(bigBytes / GiB).toFixed(bigBytes >= GiB ? 0 : 3)} GiB`;
  const perGiB = (t: Timed) => t.cpuS / (bigBytes / GiB);
  const row = (what: string, how: string, t: Timed, vs: Timed): (string | number)[] => [
    what,
    how,
    t.s,
    mb(bigBytes, t.s),
    t.s / vs.s,
    t.cpuS,
    perGiB(t) / perGiB(vs),
  ];
  table(
    `sftp, ${big}: ours (cold pool, SHA-256 verified, temp name + rename) vs OpenSSH sftp -b (cold, unverified); time best of ${REPEATS}, client CPU (this process, or sftp + ssh) mean of ${REPEATS}`,
    ['case', 'pipelining', 's', 'MB/s', 'time ours/sftp', 'client CPU s', 'CPU ours/sftp'],
    [
      row('up, ours uploadFile via exec (new)', 'cat, then openssl on the pod', r.upExec, r.upSftp),
      row('up, ours uploadFile via sftp (old)', '64 x 32 KiB writes', r.upFileSftp, r.upSftp),
      row(
        'up, ours uploadBatch (inotify2nats)',
        'cat, then openssl on the pod',
        r.upOurs,
        r.upSftp,
      ),
      row('up, ours fastPut only (unverified)', '64 x 32 KiB writes', r.upRaw, r.upSftp),
      row('up, sftp put', SFTP_PIPELINE, r.upSftp, r.upSftp),
      row(`up, sftp put -c ${SSH2_CIPHER}`, SFTP_PIPELINE, r.upSftpGcm, r.upSftp),
      row('down, ours downloadFile via exec (new)', 'cat, 32 KiB writes', r.downOurs, r.downSftp),
      row('down, ours downloadFile via sftp (old)', '64 x 255 KiB reads', r.downOld, r.downSftp),
      row(
        'down, ours downloadFiles, hash known (chef)',
        'cat, 32 KiB writes',
        r.downFetch,
        r.downSftp,
      ),
      row('down, ours fastGet only (unverified)', '64 x 255 KiB reads', r.downRaw, r.downSftp),
      row('down, sftp get', SFTP_PIPELINE, r.downSftp, r.downSftp),
      row(`down, sftp get -c ${SSH2_CIPHER}`, SFTP_PIPELINE, r.downSftpGcm, r.downSftp),
    ],
  );
  const ratioUp = r.upSftp.s / r.upExec.s;
  const ratioUpOld = r.upSftp.s / r.upFileSftp.s;
  const ratioUpBatch = r.upSftp.s / r.upOurs.s;
  const ratioDown = r.downSftp.s / r.downOurs.s;
  const ratioDownOld = r.downSftp.s / r.downOld.s;
  const ratioDownFetch = r.downSftp.s / r.downFetch.s;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log(
    `\ngoal (reported, not asserted): ${big} >= ${GOAL_BIG}x sftp's MB/s: up (uploadFile via exec) ${ratioUp.toFixed(2)}x ${verdict(ratioUp >= GOAL_BIG)} (its old SFTP path ${ratioUpOld.toFixed(2)}x, inotify2nats' uploadBatch ${ratioUpBatch.toFixed(2)}x), down (downloadFile via exec) ${ratioDown.toFixed(2)}x ${verdict(ratioDown >= GOAL_BIG)} (its old SFTP path ${ratioDownOld.toFixed(2)}x; the chef's input fetch, hash known, ${ratioDownFetch.toFixed(2)}x ${verdict(ratioDownFetch >= GOAL_BIG)})` +
      `; the SFTP part alone (fastPut/fastGet, unverified): up ${(r.upSftp.s / r.upRaw.s).toFixed(2)}x, down ${(r.downSftp.s / r.downRaw.s).toFixed(2)}x` +
      `; client CPU per GiB: down ours via exec ${perGiB(r.downOurs).toFixed(2)} s, via sftp ${perGiB(r.downOld).toFixed(2)} s, fastGet ${perGiB(r.downRaw).toFixed(2)} s, sftp + ssh ${perGiB(r.downSftp).toFixed(2)} s; up ours via exec ${perGiB(r.upExec).toFixed(2)} s, via sftp ${perGiB(r.upFileSftp).toFixed(2)} s, uploadBatch ${perGiB(r.upOurs).toFixed(2)} s, fastPut ${perGiB(r.upRaw).toFixed(2)} s, sftp + ssh ${perGiB(r.upSftp).toFixed(2)} s` +
      `; against sftp with ssh2's cipher (${SSH2_CIPHER}, like for like): up ${(r.upSftpGcm.s / r.upExec.s).toFixed(2)}x, down ${(r.downSftpGcm.s / r.downOurs.s).toFixed(2)}x` +
      (scaled ? `; scaled down to ${bigBytes} bytes for disk space (MB/s extrapolates)` : ''),
  );

  // Every repeat's time, in repeat order, and the down ratio per repeat: a case and sftp's run
  // of one repeat ran next to each other, so their ratio is the fairest single figure.
  const runsS = (runs: readonly Timed[]) => runs.map((t) => t.s.toFixed(3)).join(' ');
  const perRepeat = (ours: readonly Timed[], peer: readonly Timed[]) =>
    ours.map((t, i) => ((peer[i]?.s ?? Number.NaN) / t.s).toFixed(3)).join(' ');
  return {
    bigBytes,
    bigScaledDown: scaled,
    bigRepeats: REPEATS,
    bigUpOursRunsS: runsS(upExec),
    bigUpSftpRunsS: runsS(upSftp),
    bigUpThroughputRatioPerRepeat: perRepeat(upExec, upSftp),
    bigDownOursRunsS: runsS(downOurs),
    bigDownOldRunsS: runsS(downOld),
    bigDownFetchRunsS: runsS(downFetch),
    bigDownSftpRunsS: runsS(downSftp),
    bigDownThroughputRatioPerRepeat: perRepeat(downOurs, downSftp),
    bigDownOldThroughputRatioPerRepeat: perRepeat(downOld, downSftp),
    // up, ours: transport's uploadFile, new (exec: cat, then openssl) and old (SFTP, then hash)
    bigUpOursPath: 'uploadFile via exec',
    bigUpOursS: r.upExec.s,
    bigUpOursMBps: mb(bigBytes, r.upExec.s),
    bigUpSftpS: r.upSftp.s,
    bigUpSftpMBps: mb(bigBytes, r.upSftp.s),
    bigUpThroughputRatio: ratioUp,
    bigUpGoalMet: ratioUp >= GOAL_BIG,
    bigUpOldS: r.upFileSftp.s,
    bigUpOldMBps: mb(bigBytes, r.upFileSftp.s),
    bigUpOldThroughputRatio: ratioUpOld,
    bigUpNewOverOldSpeedup: r.upFileSftp.s / r.upExec.s,
    bigUpBatchS: r.upOurs.s,
    bigUpBatchThroughputRatio: ratioUpBatch,
    bigDownOursS: r.downOurs.s,
    bigDownOursMBps: mb(bigBytes, r.downOurs.s),
    bigDownSftpS: r.downSftp.s,
    bigDownSftpMBps: mb(bigBytes, r.downSftp.s),
    bigDownThroughputRatio: ratioDown,
    bigDownOursPath: 'downloadFile via exec',
    bigDownOldS: r.downOld.s,
    bigDownOldMBps: mb(bigBytes, r.downOld.s),
    bigDownOldThroughputRatio: ratioDownOld,
    bigDownNewOverOldSpeedup: r.downOld.s / r.downOurs.s,
    // the chef's input fetch (downloadFiles, the SHA-256 known from the request: no pod hash)
    bigDownFetchS: r.downFetch.s,
    bigDownFetchMBps: mb(bigBytes, r.downFetch.s),
    bigDownFetchThroughputRatio: ratioDownFetch,
    bigDownFetchGoalMet: ratioDownFetch >= GOAL_BIG,
    bigDownFetchCpuS: r.downFetch.cpuS,
    // the SFTP part alone (ssh2 fastPut/fastGet, no hashing, no temp name): like for like
    bigUpRawOursS: r.upRaw.s,
    bigUpRawOursMBps: mb(bigBytes, r.upRaw.s),
    bigUpRawThroughputRatio: r.upSftp.s / r.upRaw.s,
    bigDownRawOursS: r.downRaw.s,
    bigDownRawOursMBps: mb(bigBytes, r.downRaw.s),
    bigDownRawThroughputRatio: r.downSftp.s / r.downRaw.s,
    bigDownGoalMet: ratioDown >= GOAL_BIG,
    // sftp with the cipher ssh2 negotiates (its default is chacha20-poly1305): the like-for-like
    // reference; the goal stays against sftp's default
    bigSftpCipherOfSsh2: SSH2_CIPHER,
    bigUpSftpSameCipherS: r.upSftpGcm.s,
    bigUpSameCipherThroughputRatio: r.upSftpGcm.s / r.upExec.s,
    bigDownSftpSameCipherS: r.downSftpGcm.s,
    bigDownSameCipherThroughputRatio: r.downSftpGcm.s / r.downOurs.s,
    // client-side CPU seconds, mean of the repeats: this process (all threads) or sftp + ssh
    bigCpuCounted: 'client side only: this process (all threads) or sftp and its ssh; not sshd',
    bigUpOursCpuS: r.upExec.cpuS,
    bigUpOldCpuS: r.upFileSftp.cpuS,
    bigUpBatchCpuS: r.upOurs.cpuS,
    bigUpRawCpuS: r.upRaw.cpuS,
    bigUpSftpCpuS: r.upSftp.cpuS,
    bigDownOursCpuS: r.downOurs.cpuS,
    bigDownRawCpuS: r.downRaw.cpuS,
    bigDownSftpCpuS: r.downSftp.cpuS,
    bigDownOldCpuS: r.downOld.cpuS,
    bigDownCpuRatioOursToSftp: r.downOurs.cpuS / r.downSftp.cpuS,
    bigDownCpuRatioOldToSftp: r.downOld.cpuS / r.downSftp.cpuS,
    bigDownCpuRatioRawToSftp: r.downRaw.cpuS / r.downSftp.cpuS,
    bigUpCpuRatioOursToSftp: r.upExec.cpuS / r.upSftp.cpuS,
    bigUpCpuRatioOldToSftp: r.upFileSftp.cpuS / r.upSftp.cpuS,
    bigUpCpuRatioRawToSftp: r.upRaw.cpuS / r.upSftp.cpuS,
  };
}

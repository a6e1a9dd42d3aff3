// The SFTP bench's many small files (default 10,000 x 4 KiB), up and down: ours against OpenSSH
// `sftp -b` on the same sshd, key and files, each from a cold connection. Ours: uploads through
// inotify2nats' uploadBatch (what the watcher uses for every upload) and executors' uploadTree;
// downloads through downloadFiles (the chef's fetch-inputs since 19bb1e6: a pod's inputs as one
// batch, checked against the planned hashes), downloadFile (executors; the chef's per-input
// fetch before, measured here as the old code) and downloadTree (executors).
import { chownSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { downloadFile, downloadFiles, downloadTree, uploadTree } from '@computepods/transport';
import { uploadBatch } from '../../apps/inotify2nats/src/batch-upload.js';
import { table } from '../lib/report.js';
import { type Figures, mb, REPEATS, type SftpKit, sync } from './sftp-kit.js';

/** Files in flight: inotify2nats' `uploads` default and the tree transfers' default. */
const OUR_CONCURRENCY = 4;
/**
 * Small-file downloads with one downloadFile per file, as chef fetches inputs: one at a time
 * (chef before 15de5c2) and CHEF_CONCURRENCY at a time (services/chef/src/build.ts'
 * FS_CONCURRENCY since); on CHEF_FILES files, then scaled to the file count.
 */
const CHEF_FILES = Number(process.env.BENCH_SFTP_CHEF_FILES ?? 2_000);
const CHEF_CONCURRENCY = 8;
/** downloadFiles' default: files in flight on its one session. */
const BATCH_CONCURRENCY = 32;
const GOAL_SMALL = 1.25;

/** The small files: their directory, names in order, and each one's SHA-256. */
export interface SmallFiles {
  readonly dir: string;
  readonly names: readonly string[];
  readonly sha256: ReadonlyMap<string, string>;
  readonly size: number;
}

export async function smallFilesBench(kit: SftpKit, files: SmallFiles): Promise<Figures> {
  const { target } = kit;
  const { names } = files;
  const SMALL_N = names.length;
  const SMALL_SIZE = files.size;
  const smallLocal = files.dir;
  const smallSha = files.sha256;
  // --- small files, up
  const smallUp = join(kit.remote, 'small-up');
  const items = names.map((n) => ({ rel: n, local: join(smallLocal, n), mode: 0o644 }));
  const batchUp = (concurrency: number) => () =>
    kit.cold(async (pool) => {
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
    kit.rmrf(smallUp)();
    kit.mine(smallUp);
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
      ['sftp', () => kit.sftp(`put ${smallLocal}/* ${smallUp}/\n`)],
    ] as const) {
      freshUp();
      sync();
      const t0 = performance.now();
      await run();
      smallUpTimes[key].push(performance.now() - t0);
      countUp();
    }
    // uploadTree makes its own destination (temp dir, then rename).
    kit.rmrf(smallUp)();
    sync();
    const t0 = performance.now();
    await kit.cold((pool) => uploadTree(pool, target, smallLocal, smallUp));
    smallTreeUp.push(performance.now() - t0);
    countUp();
  }

  // --- small files, down (from the tree uploadTree left)
  chownSync(smallUp, kit.user.uid, kit.user.gid);
  const smallDown = join(kit.local, 'small-down');
  const freshDown = () => kit.rmrf(smallDown)();
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
        () =>
          kit.cold((pool) => downloadTree(pool, target, smallUp, smallDown, { concurrency: 1 })),
      ],
      [
        'treeConc',
        () =>
          kit.cold((pool) =>
            downloadTree(pool, target, smallUp, smallDown, { concurrency: OUR_CONCURRENCY }),
          ),
      ],
      [
        'sftp',
        async () => {
          mkdirSync(smallDown);
          await kit.sftp(`get ${smallUp}/* ${smallDown}/\n`);
        },
      ],
      // The chef's fetch: every file checked against the hash MajorDomo planned with.
      [
        'batch',
        () =>
          kit.cold(async (pool) => {
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
    await kit.cold(async (pool) => {
      for (const n of names.slice(0, chefN))
        await downloadFile(pool, target, `${smallUp}/${n}`, join(smallDown, n));
    });
    chefTimes.push(performance.now() - t0);
    countDown(chefN);
    freshDown();
    mkdirSync(smallDown);
    sync();
    const t1 = performance.now();
    await kit.cold(async (pool) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: CHEF_CONCURRENCY }, async () => {
          for (let k = next++; k < chefN; k = next++)
            await downloadFile(pool, target, `${smallUp}/${names[k]}`, join(smallDown, names[k]!));
        }),
      );
    });
    chefConcTimes.push(performance.now() - t1);
    countDown(chefN);
  }
  freshDown();

  // --- report
  const min = (a: number[]) => Math.min(...a) / 1000;
  const smallBytes = SMALL_N * SMALL_SIZE;
  const r = {
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
  const small = `${SMALL_N} x ${SMALL_SIZE} B`;
  const row = (
    what: string,
    how: string,
    bytes: number,
    s: number,
    vs: number,
  ): (string | number)[] => [what, how, s, mb(bytes, s), s / vs];
  table(
    `sftp, small files: ours (cold pool, SHA-256 verified, temp name + rename) vs OpenSSH sftp -b (cold, unverified); best of ${REPEATS}`,
    ['case', 'concurrency (files in flight)', 's', 'MB/s', 'time ours/sftp'],
    [
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
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log(
    `\ngoal (reported, not asserted): ${SMALL_N} small files <= ${GOAL_SMALL}x sftp's time: up (uploadBatch, ${OUR_CONCURRENCY} in flight) ${(r.smallUpConc / r.smallUpSftp).toFixed(2)}x ${verdict(r.smallUpConc / r.smallUpSftp <= GOAL_SMALL)}, sequential ${(r.smallUpSeq / r.smallUpSftp).toFixed(2)}x; down (downloadTree, ${OUR_CONCURRENCY}) ${(r.smallDownConc / r.smallDownSftp).toFixed(2)}x, sequential ${(r.smallDownSeq / r.smallDownSftp).toFixed(2)}x, the chef's batch (downloadFiles) ${(r.chefBatch / r.smallDownSftp).toFixed(2)}x ${verdict(r.chefBatch / r.smallDownSftp <= GOAL_SMALL)}, before it one downloadFile per file ${(chefScaled / r.smallDownSftp).toFixed(2)}x, ${CHEF_CONCURRENCY} at a time ${(chefConcScaled / r.smallDownSftp).toFixed(2)}x`,
  );

  return {
    sftpOurConcurrency: OUR_CONCURRENCY,
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
}

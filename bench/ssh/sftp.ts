// SFTP throughput for pnpm bench ssh: our transport's real code paths against OpenSSH's
// `sftp -b` on the same sshd, key, files and run. Cases:
//   - one big file (default 1 GiB) up and down (./sftp-big.ts), with the client side's CPU;
//   - many small files (default 10,000 x 4 KiB) up and down (./sftp-small.ts).
// Every one of ours verifies SHA-256 (local hash + the pod's sha256sum) and renames into place;
// sftp verifies nothing. Each timing of ours starts from a new SshPool (cold: connect + auth
// counted), as each `sftp` run connects anew. BENCH_SFTP_CASES=big or small runs only those.
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sshd } from '@computepods/testkit';
import { bigFileBench } from './sftp-big.js';
import { type Figures, noop, REPEATS, SftpKit, sync, timeOnce } from './sftp-kit.js';
import { smallFilesBench } from './sftp-small.js';

const BIG_WANTED = Number(process.env.BENCH_SFTP_BIG_BYTES ?? 1024 ** 3);
const SMALL_N = Number(process.env.BENCH_SFTP_SMALL_N ?? 10_000);
const SMALL_SIZE = Number(process.env.BENCH_SFTP_SMALL_BYTES ?? 4096);

const CASES = ['all', 'big', 'small'] as const;

function casesFromEnv(): (typeof CASES)[number] {
  const v = process.env.BENCH_SFTP_CASES ?? 'all';
  const found = CASES.find((c) => c === v);
  if (!found) throw new Error(`BENCH_SFTP_CASES must be one of ${CASES.join(', ')}; got ${v}`);
  return found;
}
/** Read when the bench starts, so a wrong value fails before anything runs. */
const RUN_CASES = casesFromEnv();

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

export async function sftpBench(sshd: Sshd): Promise<Figures> {
  const cases = RUN_CASES;
  const { dir: base, free } = roomiest();
  // Source, our copy and sftp's copy of the big file, with room to spare.
  const bigBytes = Math.min(BIG_WANTED, Math.floor(free / 6 / (1 << 20)) * (1 << 20));
  const scaled = bigBytes < BIG_WANTED;
  if (bigBytes < 16 << 20) throw new Error(`only ${free} bytes free under ${base}`);
  const work = mkdtempSync(join(base, 'cp-bench-sftp-'));
  chmodSync(work, 0o755);
  try {
    const kit = new SftpKit(sshd, work);
    const bigLocal = join(kit.local, 'big.bin');
    if (cases !== 'small') writeRandom(bigLocal, bigBytes);
    const smallLocal = join(kit.local, 'small');
    const names: string[] = [];
    const sha256 = new Map<string, string>();
    if (cases !== 'big') {
      mkdirSync(smallLocal);
      for (let i = 0; i < SMALL_N; i++) {
        const name = `f${String(i).padStart(5, '0')}.bin`;
        const data = randomBytes(SMALL_SIZE);
        writeFileSync(join(smallLocal, name), data);
        sha256.set(name, createHash('sha256').update(data).digest('hex'));
        names.push(name);
      }
    }
    sync();

    // The connect + auth share of each sftp run, measured on its own.
    const connectMs: number[] = [];
    for (let i = 0; i < 3; i++) connectMs.push(await timeOnce(noop, noop, () => kit.sftp('pwd\n')));
    const sftpConnectMs = Math.min(...connectMs);
    console.log(`\nsftp's connect + auth alone: ${sftpConnectMs.toFixed(0)} ms per run`);

    const big = cases !== 'small' ? await bigFileBench(kit, bigLocal, bigBytes, scaled) : {};
    const small =
      cases !== 'big'
        ? await smallFilesBench(kit, { dir: smallLocal, names, sha256, size: SMALL_SIZE })
        : {};
    return {
      sftpCases: cases,
      sftpWorkDir: base,
      sftpFreeBytesAtStart: free,
      sftpRepeats: REPEATS,
      sftpColdConnections: true,
      sftpOursVerifiedSha256: true,
      sftpOursVerifiedBy:
        'local SHA-256 in node + the pod hashing (openssl dgst, else sha256sum) + rename; sftp: none',
      sftpConcurrency:
        'sftp: files one by one, 64 requests in flight per file; ours: up 64 x 32 KiB write requests per file (a file of up to 64 KiB in one write), down fastGet and downloadFile via sftp 64 x 255 KiB read requests per file, downloadFile and downloadFiles one cat per file of more than 1 MiB; files 1 or 4 in flight on one SFTP session as labelled',
      sftpConnectAuthMs: sftpConnectMs,
      ...big,
      ...small,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Sshd, TempDir } from '@computepods/testkit';
import { type SshPool as Pool, SshPool, type SshTarget, shellQuote } from '@computepods/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type UploadBatchOptions, uploadBatch } from './batch-upload.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('uploadBatch against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: Pool;
  let root: string;
  const local = new TempDir('cp-batch-upload-');

  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
    root = (await pool.exec(target, 'mkdir -p cp-batch && cd cp-batch && pwd')).stdout.trim();
  });

  afterAll(async () => {
    await pool?.exec(target, `rm -rf -- ${shellQuote(root)}`);
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    local[Symbol.dispose]();
  });

  const options = (prepared: string[]): UploadBatchOptions => ({
    pool,
    target,
    root,
    concurrency: 4,
    prepareDir: async (_s, rel) => void prepared.push(rel),
    onFileError: () => false,
  });

  it('puts every file under its name with the hash of the bytes sent, and leaves no temp file', async () => {
    const files = new Map([
      ['a.txt', Buffer.from('alpha\n')],
      ['big.bin', randomBytes(3 * 1024 * 1024 + 5)],
      ['empty', Buffer.alloc(0)],
    ]);
    const items = [...files].map(([rel, data]) => {
      writeFileSync(local.join(rel), data);
      return { rel, local: local.join(rel), mode: 0o644 };
    });
    const done = await uploadBatch(items, options([]));
    for (const [rel, data] of files)
      expect(done.get(rel)).toEqual({
        sha256: sha(data),
        size: data.length,
        // A file of 1 MiB or more is streamed over an exec channel, hashed by the pod as stored.
        via: rel === 'big.bin' ? 'exec' : 'sftp',
      });
    const onPod = await pool.exec(target, `cd ${shellQuote(root)} && ls -A && sha256sum big.bin`);
    expect(onPod.stdout).toBe(
      `a.txt\nbig.bin\nempty\n${sha(files.get('big.bin') as Buffer)}  big.bin\n`,
    );
  });

  it('refuses a file in a folder the pod may not write with the SFTP status, streamed or not, and sends the others', async () => {
    // A streamed put (1 MiB or more) that the pod refuses is asked again on the session, so the
    // cause is the same per-file SFTP status as for a small file (pod-mirror refuses the file
    // and goes on), not a failed command that would fail the whole batch.
    await pool.exec(target, `cd ${shellQuote(root)} && mkdir -p ro && chmod 555 ro`);
    const files = new Map([
      ['ro/big.bin', randomBytes(2 * 1024 * 1024)],
      ['ro/small.txt', Buffer.from('small\n')],
      ['ok.bin', randomBytes(2 * 1024 * 1024)],
    ]);
    const items = [...files].map(([rel, data]) => {
      const name = local.join(rel.replace('/', '-'));
      writeFileSync(name, data);
      return { rel, local: name, mode: 0o644 };
    });
    const refused = new Map<string, unknown>();
    const done = await uploadBatch(items, {
      ...options([]),
      onFileError: (rel, err) => {
        refused.set(rel, err);
        return true;
      },
    });
    expect([...refused.keys()].sort()).toEqual(['ro/big.bin', 'ro/small.txt']);
    for (const err of refused.values())
      expect(err).toMatchObject({
        code: 'TRANSPORT_SFTP',
        message: expect.stringMatching(/denied/i),
      });
    const ok = files.get('ok.bin') as Buffer;
    expect(done.get('ok.bin')).toEqual({ sha256: sha(ok), size: ok.length, via: 'exec' });
    const left = await pool.exec(target, `cd ${shellQuote(root)} && ls -A ro && chmod 755 ro`);
    expect(left.stdout).toBe('');
  });

  it('verifies and renames the first files while later ones are still being put', async () => {
    // More files than one remote hash command takes: the first batch is checked and renamed in
    // place while the last file has not been put yet. The last file's prepareDir waits for a
    // first rename, so a batch that verifies only after every put never gets there.
    const n = 520;
    const names = Array.from({ length: n }, (_, i) => `p${String(i).padStart(3, '0')}`);
    for (const name of names) writeFileSync(local.join(name), `${name}\n`);
    let firstRenamed: () => void = () => undefined;
    const renamed = new Promise<void>((r) => {
      firstRenamed = r;
    });
    const order: string[] = [];
    const done = await uploadBatch(
      names.map((rel) => ({ rel, local: local.join(rel), mode: 0o644 })),
      {
        ...options([]),
        prepareDir: async (_s, rel) => {
          if (rel !== names.at(-1)) return;
          const waited = await Promise.race([
            renamed.then(() => true),
            new Promise<false>((r) => setTimeout(() => r(false), 30_000)),
          ]);
          order.push(waited ? 'last put after a rename' : 'last put without any rename');
        },
        onUploaded: (rel) => {
          if (order.length === 0) order.push(`renamed ${rel}`);
          firstRenamed();
        },
      },
    );
    expect(order[1]).toBe('last put after a rename');
    expect(done.size).toBe(n);
    const onPod = await pool.exec(target, `cd ${shellQuote(root)} && cat ${names.join(' ')}`);
    expect(onPod.stdout).toBe(names.map((name) => `${name}\n`).join(''));
    const left = await pool.exec(target, `ls -A ${shellQuote(root)}`);
    expect(left.stdout).not.toMatch(/tmp-/);
  });

  it('sends a file that changed while it was read again, and gives up after three more rounds, leaving no temp file', async () => {
    // A /proc file never reads as its stat says (size 0), so every round finds it changed.
    const prepared: string[] = [];
    const err = await uploadBatch(
      [{ rel: 'status', local: '/proc/self/status', mode: 0o644 }],
      options(prepared),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_CHANGED_WHILE_READ', retryable: true });
    expect(prepared).toEqual(['status', 'status', 'status', 'status']);
    const left = await pool.exec(target, `ls -A ${shellQuote(root)}`);
    expect(left.stdout).not.toMatch(/tmp-/);
    expect(left.stdout).not.toMatch(/^status$/m);
  });
});

import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { quietLogger } from '@computepods/bus';
import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Confinement } from './confine.js';
import { InputFetcher, type WantedInput } from './fetch-inputs.js';

// The chef's input check against a real sshd: another pod's workspace is a directory the sshd
// user reads; this chef's workspace is written by the test process.
describe('InputFetcher.ensureAll: a build inputs, fetched from other pods as one batch', () => {
  let sshd: Sshd;
  const tmp = new TempDir('cp-chef-fetch-');
  const podB = tmp.join('pod-b');
  const ws = tmp.join('ws');
  const outside = tmp.join('outside');
  const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
  const logger = quietLogger('chef-fetch-test');
  let fetcher: InputFetcher;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    for (const dir of [podB, ws, outside]) mkdirSync(dir);
    chmodSync(tmp.path, 0o755);
    for (let i = 0; i < 120; i++) {
      const rel = `src/d${i % 5}/f${i}.txt`;
      const data = randomBytes(i * 37);
      mkdirSync(dirname(join(podB, rel)), { recursive: true });
      writeFileSync(join(podB, rel), data);
      files.set(rel, data);
    }
    sshd = await Sshd.start();
    const t = sshd.target();
    fetcher = new InputFetcher(
      {
        'pod-b': {
          host: t.host,
          port: t.port,
          user: t.username,
          key: t.privateKeyPath,
          knownHosts: t.knownHostsPath,
          root: podB,
        },
      },
      'pod-a',
      ws,
      logger,
    );
  }, 60_000);
  afterAll(async () => {
    await fetcher?.close();
    await sshd?.[Symbol.asyncDispose]();
    tmp[Symbol.dispose]();
  });

  it('fetches the missing and stale ones, keeps the ones present, refuses the rest by name', async () => {
    const rels = [...files.keys()];
    // Present here already with the planned bytes: not fetched. Stale here: replaced.
    const [present, stale] = [rels[0] as string, rels[1] as string];
    mkdirSync(dirname(join(ws, present)), { recursive: true });
    writeFileSync(join(ws, present), files.get(present) ?? '');
    mkdirSync(dirname(join(ws, stale)), { recursive: true });
    writeFileSync(join(ws, stale), 'stale\n');
    // An input whose planned bytes pod-b no longer has: reported, and nothing written here.
    writeFileSync(join(podB, 'src/moved.txt'), 'newer\n');
    // An input this workspace holds as a symlink leading out: refused, never written through.
    writeFileSync(join(outside, 'secret'), 'mine\n');
    symlinkSync(join(outside, 'secret'), join(ws, 'src/leak.txt'));
    writeFileSync(join(podB, 'src/leak.txt'), 'hostile\n');
    const wanted: WantedInput[] = [
      ...rels.map((path) => ({ path, sha256: sha(files.get(path) ?? ''), pod: 'pod-b' })),
      { path: 'src/moved.txt', sha256: sha('planned\n'), pod: 'pod-b' },
      { path: 'src/leak.txt', sha256: sha('hostile\n'), pod: 'pod-b' },
      { path: 'src/nowhere.txt', sha256: sha('x'), pod: 'pod-c' },
      { path: 'src/own.txt', sha256: sha('x'), pod: 'pod-a' },
    ];
    const out = await fetcher.ensureAll(wanted, new Confinement(ws));

    expect(out.slice(0, rels.length)).toEqual(
      rels.map((p) => ({
        check:
          p === present
            ? { ok: true, stamp: expect.any(String) }
            : { ok: true, fetchedFrom: 'pod-b' },
      })),
    );
    for (const rel of rels)
      expect(readFileSync(join(ws, rel)).equals(files.get(rel) ?? Buffer.alloc(0))).toBe(true);
    expect(out[rels.length]).toEqual({
      check: {
        ok: false,
        reason: `input src/moved.txt: pod pod-b now has ${sha('newer\n').slice(0, 12)}, the request was for ${sha('planned\n').slice(0, 12)}`,
      },
    });
    expect(readdirSync(join(ws, 'src'))).not.toContain('moved.txt');
    expect(out[rels.length + 1]).toMatchObject({ err: { code: 'CP_CHEF_UNSAFE_PATH' } });
    expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe('mine\n');
    expect(out[rels.length + 2]).toMatchObject({
      check: { ok: false, reason: expect.stringContaining('pod pod-c is not in CP_PODS') },
    });
    expect(out[rels.length + 3]).toMatchObject({
      check: { ok: false, reason: expect.stringContaining('is missing') },
    });
    // No temp file is left anywhere.
    const all = readdirSync(ws, { recursive: true }).map(String);
    expect(all.filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('downloads nothing once fetchIf says false (a build answered from its record meanwhile)', async () => {
    writeFileSync(join(podB, 'src/gated.txt'), 'remote\n');
    mkdirSync(join(ws, 'src'), { recursive: true });
    writeFileSync(join(ws, 'src/here.txt'), 'here\n');
    const out = await fetcher.ensureAll(
      [
        { path: 'src/gated.txt', sha256: sha('remote\n'), pod: 'pod-b' },
        { path: 'src/here.txt', sha256: sha('here\n'), pod: 'pod-b' },
      ],
      new Confinement(ws),
      Promise.resolve(false),
    );
    expect(out[0]).toMatchObject({
      err: { message: expect.stringContaining('src/gated.txt') },
    });
    expect((out[0] as { err: Error }).err.message).toContain('not fetched');
    expect(out[1]).toEqual({ check: { ok: true, stamp: expect.any(String) } });
    expect(readdirSync(join(ws, 'src'))).not.toContain('gated.txt');
  });
});

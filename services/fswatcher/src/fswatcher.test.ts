import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bus, quietLogger } from '@computepods/bus';
import { type Envelope, subjects } from '@computepods/protocol';
import { NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFsWatcher } from './fswatcher.js';

interface Published {
  pod: string;
  events: Array<{ kind: string; path: string }>;
}

describe('the fswatcher publishing a workspace (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const dir = new TempDir('cp-fswatcher-');
  const root = dir.join('ws');
  const logger = quietLogger('fswatcher-test');

  beforeAll(async () => {
    mkdirSync(root);
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'fswatcher', project: 'fw', logger });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('skips a file no message may name, naming it, and announces the rest', async () => {
    const batches: Published[] = [];
    const sub = bus.nc.subscribe(subjects.filesChanged('fw', 'pod-t'));
    void (async () => {
      for await (const m of sub) batches.push((m.json() as Envelope<Published>).body);
    })();
    const refused = vi.spyOn(bus.logger, 'error');
    const svc = await startFsWatcher(bus, {
      project: 'fw',
      pod: 'pod-t',
      root,
      stampFile: dir.join('state', 'stamps'),
      ignoreFile: join(root, '.cpignore'),
      debounceMs: 5,
      reportWaitMs: 2000,
      logPatterns: [],
    });
    try {
      // In one burst: a name with a backslash (no message may carry it) and a good one.
      writeFileSync(join(root, 'bad\\name.txt'), 'b');
      writeFileSync(join(root, 'good.txt'), 'g');
      const paths = () => batches.flatMap((b) => b.events.map((e) => e.path));
      await until(() => paths().includes('good.txt'), 'good.txt announced');
      expect(refused).toHaveBeenCalledWith(
        expect.objectContaining({
          path: 'bad\\name.txt',
          reason: expect.stringMatching(/backslash/),
        }),
        'file change not announced: no message may name this file; skipped',
      );
      // Not retried for ever: a later change goes out.
      writeFileSync(join(root, 'after.txt'), 'a');
      await until(() => paths().includes('after.txt'), 'after.txt announced');
      expect(paths().sort()).toEqual(['after.txt', 'good.txt']);
      expect(batches.every((b) => b.pod === 'pod-t')).toBe(true);
    } finally {
      await svc.stop();
      sub.unsubscribe();
    }
  });
});

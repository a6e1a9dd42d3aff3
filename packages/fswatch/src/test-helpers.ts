import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileEvent, FileWatcherOptions } from './types.js';
import { FileWatcher } from './watcher.js';

/** A temp project with a watcher that records every acknowledged batch. */
export class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), 'cp-fswatch-'));
  readonly root = join(this.dir, 'root');
  readonly stampFile = join(this.dir, 'stamps');
  readonly batches: FileEvent[][] = [];
  watcher: FileWatcher | undefined;

  get events(): FileEvent[] {
    return this.batches.flat();
  }

  async start(opts: Partial<FileWatcherOptions> = {}): Promise<FileWatcher> {
    const w = new FileWatcher({
      root: this.root,
      stampFile: this.stampFile,
      onBatch: async (events) => {
        this.batches.push(events);
      },
      ...opts,
    });
    this.watcher = w;
    await w.start();
    return w;
  }

  async stop(): Promise<void> {
    await this.watcher?.close();
    this.watcher = undefined;
  }

  clear(): void {
    this.batches.length = 0;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits until `cond` holds, polling; fails after `timeoutMs` (generous: machines are shared). */
export async function waitFor(
  cond: () => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

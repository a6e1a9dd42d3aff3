import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, TempDir, until } from '@computepods/testkit';
import { afterAll, expect, it } from 'vitest';
import type { FileEvent } from './types.js';

const tmp = new TempDir('cp-fswatch-crash-');
/** Every watcher started, stopped at the end whatever happened (a failed wait throws). */
const started: ManagedProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  tmp[Symbol.dispose]();
});
const fixture = fileURLToPath(new URL('./crash-watcher.fixture.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

const root = tmp.join('root');
const stamps = tmp.join('stamps');
const log = tmp.join('events');

function watcher(env: Record<string, string>): ManagedProcess {
  const p = new ManagedProcess({
    name: 'watcher',
    command: process.execPath,
    args: ['--import', 'tsx', fixture],
    cwd: repoRoot,
    env: { ...process.env, ROOT: root, STAMPS: stamps, EVENTS: log, ...env },
  });
  started.push(p);
  return p;
}

/** The acknowledged batches' events, and the batches refused, so far. */
function logged(): { events: FileEvent[]; refused: number } {
  const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  const parsed = lines.map((l) => JSON.parse(l) as FileEvent[] | { refused: FileEvent[] });
  return {
    events: parsed.flatMap((p) => (Array.isArray(p) ? p : [])),
    refused: parsed.filter((p) => !Array.isArray(p)).length,
  };
}

it('a file created after the last save, announced, deleted, killed -9 before the delete was acknowledged: the next start announces it gone', async () => {
  mkdirSync(root, { recursive: true });
  writeFileSync(`${root}/kept.txt`, 'kept');
  // No save of the stamps in this life after the first look: what the consumer has is ahead.
  const first = watcher({ REFUSE_DELETES: '1', PERSIST_MS: '600000' });
  await first.waitForOutput('ready', 60_000);
  writeFileSync(`${root}/brief.txt`, 'brief');
  await until(
    () => logged().events.some((e) => e.path === 'brief.txt' && e.kind === 'created'),
    'brief.txt announced',
  );
  rmSync(`${root}/brief.txt`);
  await until(() => logged().refused > 0, 'the delete tried and refused');
  await first.kill9();

  const second = watcher({});
  await second.waitForOutput('ready', 60_000);
  await until(
    () => logged().events.some((e) => e.path === 'brief.txt' && e.kind === 'deleted'),
    'brief.txt announced gone after the restart',
  );
  // Saved once that was acknowledged: the journal is empty, and a third start says nothing.
  await until(() => readFileSync(`${stamps}.sent`, 'utf8') === '', 'the journal emptied');
  await second.stop();
  const before = logged().events.length;
  const third = watcher({});
  await third.waitForOutput('ready', 60_000);
  await third.stop();
  expect(logged().events.slice(before)).toEqual([]);
});

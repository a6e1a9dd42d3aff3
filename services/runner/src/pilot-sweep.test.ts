import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { PILOT_SWEEP_LIST_SCRIPT, planPilotSweep } from './pilot-sweep.js';

// What PILOT_SWEEP_LIST_SCRIPT prints: `now`, then name, job id, last written, ok, creds.
const listing = (now: number, rows: readonly (readonly (string | number)[])[]) =>
  [`now\t${now}`, ...rows.map((r) => r.join('\t'))].join('\n');

const keep = { okMs: 600_000, failedMs: 7 * 24 * 3_600_000 };
const none = { jobIds: new Set<string>(), dirs: new Set<string>() };
const NOW = 1_000_000;

describe('planPilotSweep', () => {
  it('removes an ended pilot that went well after okMs, a failed one after failedMs', () => {
    const out = listing(NOW, [
      ['pilot-q-0000000a', '11', NOW - 601, 1, 0], // ok, past okMs: goes
      ['pilot-q-0000000b', '12', NOW - 599, 1, 1], // ok, not yet: only its credentials go
      ['pilot-q-0000000c', '13', NOW - 601, 0, 1], // crashed or a task failed: kept, no creds
      ['pilot-q-0000000d', '14', NOW - 8 * 24 * 3600, 0, 0], // failed, a week old: goes
    ]);
    expect(planPilotSweep(out, 'q', keep, none)).toEqual({
      remove: ['pilot-q-0000000a', 'pilot-q-0000000d'],
      dropCreds: ['pilot-q-0000000b', 'pilot-q-0000000c'],
    });
  });

  it('never touches a live pilot (by job id or folder), nor another queue whose name starts alike', () => {
    const out = listing(NOW, [
      ['pilot-q-0000000a', '11', NOW - 10 * 24 * 3600, 1, 1],
      ['pilot-q-0000000b', '', NOW - 10 * 24 * 3600, 0, 1],
      ['pilot-q-x-0000000c', '13', NOW - 10 * 24 * 3600, 1, 1],
      ['pilot-q-../x', '14', NOW - 10 * 24 * 3600, 1, 1],
      ['job-0000000e', '15', NOW - 10 * 24 * 3600, 1, 1],
    ]);
    const live = { jobIds: new Set(['11']), dirs: new Set(['pilot-q-0000000b']) };
    expect(planPilotSweep(out, 'q', keep, live)).toEqual({ remove: [], dropCreds: [] });
    // The queue's name is a literal, not a pattern.
    expect(
      planPilotSweep(listing(NOW, [['pilot-qq-0000000a', '1', 0, 1, 1]]), 'q.', keep, none),
    ).toEqual({ remove: [], dropCreds: [] });
  });

  it('leaves a folder without a job id for a minute (its sbatch may be on its way), then treats it as failed', () => {
    const out = listing(NOW, [
      ['pilot-q-0000000a', '', NOW - 59, 1, 1],
      ['pilot-q-0000000b', '', NOW - 61, 1, 1],
      ['pilot-q-0000000c', '', NOW - 8 * 24 * 3600, 1, 1],
    ]);
    expect(planPilotSweep(out, 'q', keep, none)).toEqual({
      remove: ['pilot-q-0000000c'],
      dropCreds: ['pilot-q-0000000b'],
    });
  });

  it('keeps everything when the listing has no clock line', () => {
    expect(
      planPilotSweep('pilot-q-0000000a\t1\t0\t1\t1', 'q', { okMs: 0, failedMs: 0 }, none),
    ).toEqual({ remove: [], dropCreds: [] });
  });
});

describe('PILOT_SWEEP_LIST_SCRIPT', () => {
  it("reads each pilot folder's job id, whether it ended well, and its credentials", () => {
    using tmp = new TempDir('cp-pilot-sweep-');
    const pilot = (name: string, files: Record<string, string>) => {
      for (const [f, content] of Object.entries(files)) {
        mkdirSync(join(tmp.path, name, f, '..'), { recursive: true });
        writeFileSync(join(tmp.path, name, f), content);
      }
    };
    const stopped = '{"level":30,"msg":"pilot worker stopped"}\n';
    pilot('pilot-q-0000000a', {
      'job.id': '11\n',
      'job.err': stopped,
      'nats.creds': 'secret',
      'tasks/t1/exit': '0\n',
      'tasks/t 2/exit': '0\n',
    });
    // A task failed.
    pilot('pilot-q-0000000b', { 'job.id': '12\n', 'job.err': stopped, 'tasks/t1/exit': '3\n' });
    // Killed: never logged its stop; its running task has no exit file.
    pilot('pilot-q-0000000c', { 'job.id': '13\n', 'job.err': '', 'tasks/t1/pid': '9\n' });
    // A staged task's folder left behind.
    pilot('pilot-q-0000000d', { 'job.id': '14\n', 'job.err': stopped, 'stage/t1/0.work/x': '' });
    // Never started: no job id.
    pilot('pilot-q-0000000e', { 'job.sh': '#!/bin/sh\n', 'nats.creds': 'secret' });
    pilot('other-0000000f', { 'job.id': '16\n' });
    const out = execFileSync('sh', ['-c', PILOT_SWEEP_LIST_SCRIPT, 'sh', tmp.path, 'q'], {
      encoding: 'utf8',
    });
    const rows = out
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t'))
      .map(([name, id, , ok, creds]) => [name, id, ok, creds])
      .sort();
    expect(out.startsWith('now\t')).toBe(true);
    expect(rows).toEqual([
      ['pilot-q-0000000a', '11', '1', '1'],
      ['pilot-q-0000000b', '12', '0', '0'],
      ['pilot-q-0000000c', '13', '0', '0'],
      ['pilot-q-0000000d', '14', '0', '0'],
      ['pilot-q-0000000e', '', '0', '1'],
    ]);
    // Just written: an ended pilot that went well goes at once with okMs 0; the others stay.
    expect(planPilotSweep(out, 'q', { okMs: 0, failedMs: 3_600_000 }, none)).toEqual({
      remove: ['pilot-q-0000000a'],
      dropCreds: [],
    });
  });
});

import { describe, expect, it } from 'vitest';
import { planSweep } from './slurm-sweep.js';

const keep = { okMs: 600_000, failedMs: 3_600_000 };
const listing = (now: number, rows: string[][]) =>
  [`now\t${now}`, ...rows.map((r) => r.join('\t'))].join('\n');

describe('planSweep', () => {
  it('removes ended folders past their keep time, keeps failures longer, and asks SLURM about folders that never ended', () => {
    const plan = planSweep(
      listing(10_000, [
        ['a1-0000000a', '1', String(10_000 - 601), '1'], // ok, 601 s ago: goes
        ['a2-0000000b', '1', String(10_000 - 599), '1'], // ok, 599 s ago: stays
        ['a3-0000000c', '1', String(10_000 - 601), '0'], // failed, 601 s ago: stays
        ['a4-0000000d', '1', String(10_000 - 3_600), '0'], // failed, an hour ago: goes
        ['a5-0000000e', '0', String(10_000 - 3_600), '0'], // never ended, old: ask SLURM
        ['a6-0000000f', '0', String(10_000 - 60), '0'], // never ended, young: stays
      ]),
      keep,
      new Set(),
    );
    expect(plan).toEqual({ remove: ['a1-0000000a', 'a4-0000000d'], ifUnknown: ['a5-0000000e'] });
  });

  it('never touches a folder it did not name, nor one of a job it watches, nor anything without the clock', () => {
    const old = String(1);
    const rows = [
      ['keep-me', '1', old, '1'],
      ['..', '1', old, '1'],
      ['b1-0000000a', '1', old, '1'],
      ['b2-0000000b', '1', 'x', '1'],
    ];
    expect(planSweep(listing(10_000, rows), keep, new Set(['b1-0000000a']))).toEqual({
      remove: [],
      ifUnknown: [],
    });
    expect(planSweep(rows.map((r) => r.join('\t')).join('\n'), keep, new Set())).toEqual({
      remove: [],
      ifUnknown: [],
    });
  });
});

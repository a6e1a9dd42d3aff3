import { expect, it } from 'vitest';
import { type RacyDue, RacyVerifier } from './racy.js';
import type { Stamp } from './stamps.js';
import { waitFor } from './test-helpers.js';

const MS = 1_000_000n;
const nowNs = () => BigInt(Date.now()) * MS;
const stamp = (ctimeNs: bigint): Stamp => ({
  mtimeNs: ctimeNs,
  ctimeNs,
  size: 1,
  ino: 1n,
  sha256: 'x'.repeat(64),
  verifiedNs: ctimeNs,
});

function verifier(): { racy: RacyVerifier; promoted: string[] } {
  const promoted: string[] = [];
  const racy = new RacyVerifier(MS, (items: RacyDue[]) => {
    for (const i of items) promoted.push(i.path);
  });
  return { racy, promoted };
}

it('promotes racy stamps once their window has passed, in the order they fall due', async () => {
  const { racy, promoted } = verifier();
  try {
    racy.schedule('first', stamp(nowNs() + 50n * MS));
    racy.schedule('second', stamp(nowNs() + 100n * MS));
    racy.schedule('cancelled', stamp(nowNs() + 60n * MS));
    racy.cancel('cancelled');
    await waitFor(() => promoted.length === 2 && racy.size === 0, 'both stamps promoted');
    expect(promoted).toEqual(['first', 'second']);
  } finally {
    racy.close();
  }
});

it('a stamp due sooner than those waiting is not held back by them', async () => {
  const { racy, promoted } = verifier();
  try {
    // The first stamp's window ends in a minute: the timer armed for it must not keep the
    // second waiting that long.
    racy.schedule('later', stamp(nowNs() + 60_000n * MS));
    racy.schedule('sooner', stamp(nowNs()));
    await waitFor(() => promoted.length > 0, 'the sooner stamp promoted');
    expect(promoted).toEqual(['sooner']);
    expect(racy.size).toBe(1);
  } finally {
    racy.close();
  }
});

import type { Bus } from '@computepods/bus';
import { quietLogger } from '@computepods/bus';
import type { FileEvent, FilesChanged } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { FileOrder, MAX_GONE_REMEMBERED } from './file-order.js';

const logger = quietLogger('majordomo');
/** No stream lookup is expected: every path here has a sequence. */
const noBus = new Proxy({} as Bus, {
  get: () => {
    throw new Error('the files stream was read');
  },
});
const changed = (path: string): FileEvent => ({
  kind: 'changed',
  path,
  size: 1,
  mtimeNs: '1',
  sha256: 'a'.repeat(64),
});
const batch = (...events: FileEvent[]): FilesChanged => ({ pod: 'pod-a', events });

describe('FileOrder', () => {
  it('takes a first delivery as news, whatever the sequences kept', async () => {
    const order = new FileOrder({ bus: noBus, stream: 's', logger, seqOf: () => 50 });
    const v = await order.judge(batch(changed('a')), 10, 1, 'c');
    expect(v.stale('a')).toBe(false);
  });

  it('skips, in a batch delivered again, a path whose record or delete came from a later batch', async () => {
    const seqs = new Map([['rec', 20]]);
    const order = new FileOrder({ bus: noBus, stream: 's', logger, seqOf: (p) => seqs.get(p) });
    order.gone('del', 30);
    const v = await order.judge(batch(changed('rec'), changed('del')), 10, 2, 'c');
    expect([v.stale('rec'), v.stale('del')]).toEqual([true, true]);
    const after = await order.judge(batch(changed('rec'), changed('del')), 40, 2, 'c');
    expect([after.stale('rec'), after.stale('del')]).toEqual([false, false]);
  });

  it('forgets a delete once the path is back, and keeps the latest deletes only', async () => {
    const seqs = new Map<string, number>();
    const order = new FileOrder({ bus: noBus, stream: 's', logger, seqOf: (p) => seqs.get(p) });
    order.gone('x', 30);
    order.back('x');
    seqs.set('x', 5);
    expect((await order.judge(batch(changed('x')), 10, 2, 'c')).stale('x')).toBe(false);
    for (let i = 0; i <= MAX_GONE_REMEMBERED; i++) order.gone(`g${i}`, 100);
    // The oldest delete is dropped: its path has no sequence left, and the stream is asked.
    await expect(order.judge(batch(changed('g0')), 10, 2, 'c')).rejects.toThrow(
      'the files stream was read',
    );
    // The next one is still kept: no lookup, and the delete is later than the batch.
    expect((await order.judge(batch(changed('g1')), 10, 2, 'c')).stale('g1')).toBe(true);
  });
});

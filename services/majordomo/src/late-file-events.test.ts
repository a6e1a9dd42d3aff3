import { type BuildRequested, type FileEvent, subjects } from '@computepods/protocol';
import { defined, untilDefined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { POD, sha, startedMajorDomo } from './test-majordomo.js';

const P = 'late';

/**
 * A pod's watcher and the chefs report on different streams, so a watcher's look at an output
 * can reach MajorDomo after the result of a later build of it (seen in the e2e cycle tests under
 * load: pass 2's output hashed by the watcher, delivered after pass 3's result). Such an event is
 * older than the build output (its mtime says so) and must not count as an edit: taken as one it
 * restarted the cycle, cancelled its build in flight and recorded bytes the workspace no longer
 * had. Here the chef and the watcher are played by hand, so the late event comes every time.
 */
describe('MajorDomo and file events older than the build output they describe', () => {
  const t = startedMajorDomo(P);
  const requests = t.requests;

  const event = (path: string, content: string, mtimeNs: bigint): FileEvent => ({
    kind: 'changed',
    path,
    size: content.length,
    mtimeNs: String(mtimeNs),
    sha256: sha(content),
  });
  const files = (...events: FileEvent[]) => t.files(...events);
  /** The chef's part: the result of a request, its output written at `mtimeNs`. */
  const result = (req: BuildRequested, content: string, mtimeNs: bigint) =>
    t.bus.publish('build.result', subjects.buildResult(P), {
      buildId: req.buildId,
      taskId: req.taskId,
      chef: 'gen',
      pod: POD,
      status: 'succeeded',
      outputs: {
        [defined(req.outputs[0], 'an output')]: {
          sha256: sha(content),
          size: content.length,
          mtimeNs: String(mtimeNs),
        },
      },
      cutoff: { [defined(req.outputs[0], 'an output')]: sha(content) },
      durationMs: 1,
    });
  const record = async (path: string) => (await (await t.artefacts()).get(path))?.value;
  /** Waits until MajorDomo has handled everything published so far (its consumers are in order). */
  const drained = async (path: string, content: string, mtimeNs: bigint) => {
    // A look at an unrelated source, published after the rest, handled once the rest is.
    await files(event(path, content, mtimeNs));
    await untilDefined(`${path} recorded`, async () =>
      (await record(path))?.sha256 === sha(content) ? true : undefined,
    );
  };

  it('ignores a late look at an earlier build output, also after a restart; an edit made after the build still counts', async () => {
    // Two builds of out/a.up, written at t=1000 and t=2000 ns.
    await files(event('src/a.txt', 'one', 500n));
    const first = await untilDefined('the first request', () => requests[0]);
    await result(first, 'ONE', 1000n);
    await untilDefined('the first output', async () =>
      (await record('out/a.up'))?.sha256 === sha('ONE') ? true : undefined,
    );
    await files(event('src/a.txt', 'two', 1500n));
    const second = await untilDefined('the second request', () => requests[1]);
    await result(second, 'TWO', 2000n);
    await untilDefined('the second output', async () =>
      (await record('out/a.up'))?.status === 'up_to_date' &&
      (await record('out/a.up'))?.sha256 === sha('TWO')
        ? true
        : undefined,
    );

    // The watcher's look at the first build's output, delivered only now.
    await files(event('out/a.up', 'ONE', 1000n));
    await drained('notes/marker-1', 'm', 2100n);
    expect(await record('out/a.up')).toMatchObject({ sha256: sha('TWO'), status: 'up_to_date' });
    expect(requests).toHaveLength(2);
    expect((await record('out/a.up'))?.written).toEqual({ pod: POD, mtimeNs: '2000' });

    // A restarted MajorDomo knows it from the record (a redelivered event, say).
    await t.stop();
    await t.start();
    await files(event('out/a.up', 'ONE', 1000n));
    await drained('notes/marker-2', 'm', 2200n);
    expect(await record('out/a.up')).toMatchObject({ sha256: sha('TWO'), status: 'up_to_date' });
    expect(requests).toHaveLength(2);

    // Written after the build (a later mtime): an edit by hand, which the build undoes.
    await files(event('out/a.up', 'BY HAND', 3000n));
    const third = await untilDefined('a rebuild after the edit', () => requests[2]);
    expect(third).toMatchObject({ taskId: 'up:a', inputs: { 'src/a.txt': sha('two') } });
    expect((await record('out/a.up'))?.written).toBeUndefined();
  });
});

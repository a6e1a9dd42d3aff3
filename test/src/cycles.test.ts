import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, type mdStatus, settled } from './watch-builds.js';

/**
 * Cycles over real processes, with sh rules only: a cycle that never settles (and stays stopped
 * across a MajorDomo kill -9), and early cutoff in a chain. LaTeX's cycles, which need TeX, are
 * in cycles-latex.test.ts.
 */
describe('cycles: non-convergence, kill -9 after the verdict, early cutoff', () => {
  let stack: Stack;
  let log: BuildLog;
  const upToDate = (path: string) => (s: Awaited<ReturnType<typeof mdStatus>>) =>
    s.artefacts.some((a) => a.path === path && a.status === 'up_to_date');

  beforeAll(async () => {
    stack = await Stack.start('cycles');
    const gen = stack.dir.join('gen.yaml');
    writeFileSync(
      gen,
      [
        'rules:',
        // inc and copy feed each other a number that grows every pass: never a fixpoint.
        '  - id: inc',
        "    inputs: ['c/{stem}.seed']",
        "    optionalInputs: ['c/{stem}.b']",
        "    outputs: ['c/{stem}.a']",
        '    command: n=$(cat c/{stem}.b 2>/dev/null || echo 0); echo $((n + 1)) > {out0}',
        '  - id: copy',
        "    inputs: ['c/{stem}.a']",
        "    outputs: ['c/{stem}.b']",
        '    command: cp {in0} {out0}',
        // strip drops comment lines, so a comment edit leaves its output byte-identical.
        '  - id: strip',
        "    inputs: ['notes/{stem}.src']",
        "    outputs: ['notes/{stem}.code']",
        "    command: grep -v '^#' {in0} > {out0} || true",
        '  - id: count',
        "    inputs: ['notes/{stem}.code']",
        "    outputs: ['notes/{stem}.lines']",
        '    command: wc -l < {in0} > {out0}',
        '',
      ].join('\n'),
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'gen', CP_CHEF_DEFINITION: gen }, 'chef-gen'),
    ]);
    log = await BuildLog.start(stack.bus);
  }, 120_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('reports a cycle that keeps changing as not converging, naming its artefacts', async () => {
    stack.write('c/x.seed', 'go\n');
    const s = await settled(
      stack.bus,
      (st) => st.nonConvergent.length > 0,
      60_000,
      () => stack.logs(),
    );
    expect(s.nonConvergent).toEqual([
      expect.objectContaining({ artefacts: ['c/x.a', 'c/x.b'], passes: 5 }),
    ]);
    for (const path of ['c/x.a', 'c/x.b'])
      expect((await stack.artefact(path))?.status).toBe('not_converging');
    // Five passes, each ran inc then copy once.
    expect(log.passes('x')).toEqual([1, 2, 3, 4, 5].flatMap((p) => [`${p}:inc`, `${p}:copy`]));
    expect(readFileSync(join(stack.workspace, 'c/x.a'), 'utf8')).toBe('5\n');
    const text = await stack.cpctrl(['status', '--artefacts']);
    expect(text.stdout).toMatch(/c\/x\.a\s+not_converging/);
  });

  it('keeps a non-converging cycle stopped across a MajorDomo kill -9, until a source changes', async () => {
    const from = log.requests.length;
    await stack.kill9('majordomo');
    await stack.start('majordomo');
    // Planning after a restart happens before "ready", and MajorDomo's requests reach this
    // connection before its status reply: nothing for x went out if none is logged by now.
    const s = await settled(
      stack.bus,
      () => true,
      30_000,
      () => stack.logs(),
    );
    expect(s.nonConvergent).toEqual([
      expect.objectContaining({ artefacts: ['c/x.a', 'c/x.b'], passes: 5 }),
    ]);
    expect(s.running).toEqual([]);
    expect(log.passes('x', from)).toEqual([]);
    expect(readFileSync(join(stack.workspace, 'c/x.a'), 'utf8')).toBe('5\n');
    for (const path of ['c/x.a', 'c/x.b'])
      expect(await stack.artefact(path)).toMatchObject({ status: 'not_converging', passes: 5 });

    // An edit starts a new round with the full pass limit.
    stack.write('c/x.seed', 'go again\n');
    const again = await settled(
      stack.bus,
      () => log.passes('x', from).length === 10,
      60_000,
      () => stack.logs(),
    );
    expect(log.passes('x', from)).toEqual(
      [1, 2, 3, 4, 5].flatMap((p) => [`${p}:inc`, `${p}:copy`]),
    );
    expect(again.nonConvergent).toEqual([
      expect.objectContaining({ artefacts: ['c/x.a', 'c/x.b'], passes: 5 }),
    ]);
    expect(readFileSync(join(stack.workspace, 'c/x.a'), 'utf8')).toBe('10\n');
  }, 120_000);

  it('stops propagation where an intermediate is rebuilt with the same hash (early cutoff)', async () => {
    stack.write('notes/n.src', '# first comment\nalpha\nbeta\n');
    await settled(stack.bus, upToDate('notes/n.lines'), 30_000, () => stack.logs());
    expect(readFileSync(join(stack.workspace, 'notes/n.lines'), 'utf8').trim()).toBe('2');
    const code = await stack.artefact('notes/n.code');
    const lines = await stack.artefact('notes/n.lines');
    const from = log.requests.length;

    stack.write('notes/n.src', '# another comment, longer\nalpha\nbeta\n');
    await settled(
      stack.bus,
      (s) =>
        s.artefacts.some(
          (a) =>
            a.path === 'notes/n.code' && a.status === 'up_to_date' && a.buildId !== code?.buildId,
        ),
      30_000,
      () => stack.logs(),
    );
    expect(log.passes('n', from)).toEqual(['1:strip']);
    expect((await stack.artefact('notes/n.code'))?.sha256).toBe(code?.sha256);
    expect((await stack.artefact('notes/n.lines'))?.buildId).toBe(lines?.buildId);

    // A real change still goes through.
    stack.write('notes/n.src', '# another comment, longer\nalpha\nbeta\ngamma\n');
    await settled(
      stack.bus,
      (s) =>
        upToDate('notes/n.lines')(s) &&
        readFileSync(join(stack.workspace, 'notes/n.lines'), 'utf8').trim() === '3',
      30_000,
      () => stack.logs(),
    );
  });
});

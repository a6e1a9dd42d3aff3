import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog, settled } from './watch-builds.js';

/**
 * Input projections on sources, end to end: a rule that reads only the `key=` lines of a config
 * (a line filter) and one that reads only the set of lines of a list (a `sort -u` command). An
 * edit outside what a rule reads is planned (MajorDomo cannot read the file) but the chef, which
 * has it, finds the projection unchanged and keeps the outputs: nothing runs, nothing downstream
 * rebuilds. An edit inside it runs the rule.
 */
describe('input projections on sources', () => {
  let stack: Stack;
  let log: BuildLog;
  const ledger = () => readFileSync(stack.dir.join('ran.txt'), 'utf8');
  const out = (p: string) => readFileSync(join(stack.workspace, p), 'utf8');

  beforeAll(async () => {
    stack = await Stack.start('projections');
    const ran = stack.dir.join('ran.txt');
    writeFileSync(ran, '');
    const chef = stack.dir.join('chef.yaml');
    writeFileSync(
      chef,
      [
        'rules:',
        '  - id: keys',
        "    inputs: ['src/{stem}.cfg']",
        "    outputs: ['out/{stem}.keys']",
        '    projections:',
        "      - input: 'src/{stem}.cfg'",
        "        lines: '^key='",
        `    command: sed -n '/^key=/p' {in0} > {out0} && echo keys >> ${ran}`,
        '  - id: count',
        "    inputs: ['out/{stem}.keys']",
        "    outputs: ['out/{stem}.count']",
        `    command: wc -l < {in0} > {out0} && echo count >> ${ran}`,
        '  - id: set',
        "    inputs: ['src/{stem}.list']",
        "    outputs: ['out/{stem}.set']",
        '    projections:',
        "      - input: 'src/{stem}.list'",
        '        command: [sort, -u]',
        '        timeoutMs: 10000',
        `    command: sort -u {in0} > {out0} && echo set >> ${ran}`,
        '',
      ].join('\n'),
    );
    await Promise.all([
      stack.start('majordomo'),
      stack.start('runner'),
      stack.start('fswatcher'),
      stack.start('chef', { CP_CHEF: 'proj', CP_CHEF_DEFINITION: chef }),
    ]);
    log = await BuildLog.start(stack.bus);
  }, 120_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  /** Waits until `path` is recorded with these bytes and MajorDomo is idle. */
  const recorded = (path: string, text: string) =>
    settled(
      stack.bus,
      (s) =>
        s.artefacts.some((a) => a.path === path && a.sha256 === sha256(text)) &&
        s.artefacts.every((a) => a.status === 'up_to_date' || a.status === 'source'),
      60_000,
      () => `${ledger()}\n${stack.logs()}`,
    );

  it('a line filter: an edit outside the key= lines runs nothing, one inside runs the rule', async () => {
    stack.write('src/a.cfg', 'key=1\n# a comment\n');
    await recorded('out/a.count', '1\n');
    expect(out('out/a.keys')).toBe('key=1\n');
    expect(ledger()).toBe('keys\ncount\n');

    const from = log.results.length;
    stack.write('src/a.cfg', 'key=1\n# another comment\nnot a key\n');
    await recorded('src/a.cfg', 'key=1\n# another comment\nnot a key\n');
    expect(ledger()).toBe('keys\ncount\n');
    const kept = log.results.slice(from).filter((r) => r.taskId === 'keys:a');
    expect(kept).toEqual([expect.objectContaining({ status: 'succeeded', kept: true })]);
    expect(log.results.slice(from).some((r) => r.taskId === 'count:a')).toBe(false);

    stack.write('src/a.cfg', 'key=2\n# another comment\nkey=3\n');
    await recorded('out/a.keys', 'key=2\nkey=3\n');
    await recorded('out/a.count', '2\n');
    expect(ledger()).toBe('keys\ncount\nkeys\ncount\n');
  });

  it('a command projection (sort -u): reordering or repeating lines runs nothing, a new line runs', async () => {
    stack.write('src/b.list', 'pear\napple\n');
    await recorded('out/b.set', 'apple\npear\n');
    const before = ledger();

    stack.write('src/b.list', 'apple\npear\napple\n');
    await recorded('src/b.list', 'apple\npear\napple\n');
    expect(ledger()).toBe(before);

    stack.write('src/b.list', 'apple\npear\nplum\n');
    await recorded('out/b.set', 'apple\npear\nplum\n');
    expect(ledger()).toBe(`${before}set\n`);
  });

  it('a restarted MajorDomo still knows the projections: nothing is requested again', async () => {
    const from = log.requests.length;
    const ran = ledger();
    await stack.kill9('majordomo');
    await stack.start('majordomo');
    await recorded('out/a.count', '2\n');
    await recorded('out/b.set', 'apple\npear\nplum\n');
    // Their traces hold projected hashes: the restored graph knows the sources' projections from
    // the artefact records (and the result of the kept build answers for these bytes anyway).
    expect(log.requests.slice(from).map((r) => r.taskId)).toEqual([]);
    expect(ledger()).toBe(ran);
  }, 120_000);
});

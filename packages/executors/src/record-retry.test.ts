import { CpError, type TaskRecord } from '@computepods/protocol';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordFailedError } from './errors.js';
import { Executor } from './executor.js';
import { LocalBackend } from './local-backend.js';
import { RecordingHooks, testLocalResource } from './test-hooks.js';

const tmp = new TempDir('cp-exec-record-retry-');
afterAll(() => tmp[Symbol.dispose]());

const resource = testLocalResource(tmp.path, 1);

/** Hooks whose record() throws the given errors, one per call, then writes. */
class FailingHooks extends RecordingHooks {
  tries = 0;
  constructor(private readonly failures: unknown[]) {
    super();
  }
  override async record(rec: TaskRecord): Promise<void> {
    this.tries++;
    const next = this.failures.shift();
    if (next !== undefined) throw next;
    await super.record(rec);
  }
}

const ATTEMPTS = 3;
let n = 0;

/** Refuses a fresh task (one write, no process) and reports how it went. */
async function refuseWith(failures: unknown[]) {
  const hooks = new FailingHooks(failures);
  const ex = new Executor({
    resource: 'local-resource',
    backend: (ctx) => new LocalBackend({ resource }, ctx),
    hooks,
    recordRetry: { attempts: ATTEMPTS, baseMs: 1, maxMs: 1 },
  });
  const task = {
    taskId: `r${++n}`,
    resource: 'local-resource',
    command: 'true',
    cwd: tmp.path,
    env: {},
    gpu: false,
  };
  const result = await ex.refuse(task, 'refused by the test').catch((err: unknown) => err);
  await ex.close();
  return { result, tries: hooks.tries, recorded: hooks.records.has(task.taskId) };
}

const transient = () =>
  Object.assign(new Error('connect ECONNRESET'), {
    code: 'ECONNRESET',
    errno: -104,
    syscall: 'read',
  });

// "Is it retryable?" is protocol's isRetryable, asked once by withRetry: the executor reads no
// `retryable` by hand. What matters to a record write: a conflict (retryable: false) fails at
// once, so a task another runner holds is left to it; a transient failure is tried again; an
// error nobody classified is tried again too (it may be transient: no record is lost to it).
describe("a record write is retried as protocol's isRetryable says", () => {
  it('tries a transient failure again and records the task', async () => {
    const { result, tries, recorded } = await refuseWith([transient(), transient()]);
    expect(result).toMatchObject({ state: 'failed' });
    expect(tries).toBe(3);
    expect(recorded).toBe(true);
  });

  it('tries an unclassified error again', async () => {
    const { result, tries } = await refuseWith([new Error('something odd')]);
    expect(result).toMatchObject({ state: 'failed' });
    expect(tries).toBe(2);
  });

  it('gives up after recordRetry.attempts tries, with the last failure as the cause', async () => {
    const last = transient();
    const { result, tries, recorded } = await refuseWith([transient(), transient(), last]);
    expect(result).toBeInstanceOf(RecordFailedError);
    expect((result as RecordFailedError).cause).toBe(last);
    expect(tries).toBe(ATTEMPTS);
    expect(recorded).toBe(false);
  });

  it('does not retry a failure that says it is final (a revision conflict)', async () => {
    const conflict = new CpError('CP_CONFLICT', 'the record was changed by someone else');
    const { result, tries } = await refuseWith([conflict]);
    expect(result).toBeInstanceOf(RecordFailedError);
    expect((result as RecordFailedError).cause).toBe(conflict);
    expect(tries).toBe(1);
  });

  it('does not retry an error protocol classifies as final (a non-transient errno)', async () => {
    const gone = Object.assign(new Error('ENOENT'), { code: 'ENOENT', errno: -2, syscall: 'open' });
    const { result, tries } = await refuseWith([gone]);
    expect(result).toBeInstanceOf(RecordFailedError);
    expect(tries).toBe(1);
  });
});

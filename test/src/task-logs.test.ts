import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buckets,
  streams,
  subjects,
  type TaskLogChunk,
  TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import { ManagedProcess, Slurm, Sshd, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createConfig,
  createQueue,
  JOB_USER,
  openToJobUser,
  slurmCluster,
  slurmSudoQueue,
} from './slurm-queues.js';
import { Stack } from './stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CAP = 64 * 1024;

interface SseEvent {
  readonly id: string;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** A follow over REST: fetch streaming with the token in the Authorization header, as the page does. */
class Follow {
  readonly events: SseEvent[] = [];
  #buf = '';
  readonly done: Promise<void>;
  readonly status: Promise<number>;

  constructor(url: string, token: string) {
    const res = fetch(url, { headers: { authorization: `Bearer ${token}` } });
    this.status = res.then((r) => r.status);
    this.done = res.then(async (r) => {
      const reader = r.body!.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.#buf += dec.decode(value, { stream: true });
        let i = this.#buf.indexOf('\n\n');
        while (i >= 0) {
          const block = this.#buf.slice(0, i);
          this.#buf = this.#buf.slice(i + 2);
          const fields = Object.fromEntries(
            block
              .split('\n')
              .filter((l) => !l.startsWith(':') && l.includes(': '))
              .map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
          );
          if (fields.event)
            this.events.push({
              id: fields.id ?? '',
              event: fields.event,
              data: JSON.parse(fields.data ?? '{}'),
            });
          i = this.#buf.indexOf('\n\n');
        }
      }
    });
  }

  text(): string {
    return Buffer.concat(
      this.events
        .filter((e) => e.event === 'data')
        .map((e) => Buffer.from(e.data.data as string, 'base64')),
    ).toString();
  }
}

/**
 * Live task logs from any runner, over NATS, with real processes: a nats-server in operator
 * mode, MajorDomo whose CP_LOG_ROOTS points at an empty folder (it cannot read any runner's
 * files: everything it shows came over NATS), a local runner and a slurm_sudo runner on a real
 * single-node SLURM, cpctrl with a viewer's credentials.
 */
describe('task logs over NATS, end to end', { timeout: 300_000 }, () => {
  let stack: Stack;
  let slurm: Slurm;
  let sshd: Sshd;
  let api: string;
  let viewerCreds: string;
  const shared = new TempDir('cp-e2e-tasklogs-');
  const gates = shared.join('gates');

  const runnerLocal = { CP_TASK_LOG_MAX_BYTES: String(CAP) };
  const runnerHpc = {
    CP_RESOURCE: 'hpc',
    CP_PROFILE: 'hpc-profile',
    CP_WORKSPACE_ROOTS: shared.path,
  };
  const runnerSsh = {
    CP_RESOURCE: 'hpc-ssh',
    CP_PROFILE: 'hpc-ssh-profile',
    CP_WORKSPACE_ROOTS: shared.path,
  };

  beforeAll(async () => {
    await openToJobUser(shared, ['gates', 'jobs', 'ws', 'remote-jobs']);
    [stack, slurm, sshd] = await Promise.all([
      Stack.start('tasklogs'),
      Slurm.start(),
      Sshd.start({ users: [JOB_USER] }),
    ]);
    const t = sshd.target(JOB_USER);
    await slurmSudoQueue(stack, slurm, {
      id: 'hpc',
      jobsDir: shared.join('jobs'),
      tasksDir: shared.join('tasks'),
    });
    await createConfig(stack, 'resource', {
      type: 'slurm_ssh',
      name: 'HPC via SSH',
      id: 'hpc-ssh',
      host: t.host,
      port: t.port,
      jobs_local_dir: stack.dir.join('ssh-local-jobs'),
      tasks_local_dir: stack.dir.join('ssh-local-tasks'),
      ...slurmCluster(slurm),
    });
    await createConfig(stack, 'profile', {
      name: 'HPC SSH profile',
      id: 'hpc-ssh-profile',
      resource: 'hpc-ssh',
      resource_type: 'slurm_ssh',
      username: JOB_USER,
      ssh_key_path: t.privateKeyPath,
      known_hosts_path: t.knownHostsPath,
      jobs_remote_dir: shared.join('remote-jobs'),
      tasks_remote_dir: shared.join('remote-tasks'),
    });
    await createQueue(stack, 'hpc-ssh', 'hpc-ssh-profile');
    const elsewhere = stack.dir.join('not-the-runners-folders');
    mkdirSync(elsewhere);
    await Promise.all([
      stack.start('majordomo', { CP_LOG_ROOTS: elsewhere }),
      stack.start('runner', runnerLocal),
      stack.start('runner', runnerHpc, 'runner-hpc'),
      stack.start('runner', runnerSsh, 'runner-ssh'),
    ]);
    api = await stack.httpUrl();
    viewerCreds = await stack.creds({ role: 'viewer', scope: 'vera' });
  }, 240_000);

  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
    await Promise.allSettled([slurm?.[Symbol.asyncDispose](), sshd?.[Symbol.asyncDispose]()]);
    shared[Symbol.dispose]();
  });

  /** Submits a task as a chef would, and waits until its runner has recorded it. */
  async function submit(queue: string, task: Omit<TaskSubmitted, 'resource' | 'env' | 'gpu'>) {
    await stack.bus.publish('task.submitted', subjects.tasks(stack.project, queue), {
      resource: queue,
      env: {},
      gpu: false,
      ...task,
    });
    await until(
      async () => (await record(task.taskId)) !== undefined,
      `${task.taskId} recorded`,
      60_000,
    );
  }

  async function record(taskId: string): Promise<TaskRecord | undefined> {
    const kv = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    return (await kv.get(taskId))?.value;
  }

  const get = (path: string) =>
    fetch(`${api}${path}`, { headers: { authorization: `Bearer ${stack.apiToken}` } });

  /** cpctrl as a viewer on another machine in spirit: its own process, NATS only. */
  function cpctrl(args: string[], name = 'cpctrl-logs'): ManagedProcess {
    return new ManagedProcess({
      name,
      command: process.execPath,
      args: [join(root, 'apps/cpctrl/bin/cpctrl.js'), ...args],
      env: {
        ...stack.env('cpctrl'),
        NATS_CREDS: viewerCreds,
        CPCTRL_CONFIG: stack.dir.join('cpctrl-viewer.json'),
      },
      cwd: root,
    });
  }

  it('follows a running local task live, via cpctrl and REST, and resumes from an offset', async () => {
    const ws = stack.workspace;
    const gate = join(gates, 'local-1');
    await submit('local', {
      taskId: 'live.1',
      cwd: ws,
      command: `echo first line; echo oops >&2; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second line; exit 3`,
    });
    const cli = cpctrl(['logs', '-f', 'live.1']);
    const sse = new Follow(`${api}/api/logs/live.1?stream=stdout&follow=1`, stack.apiToken);
    expect(await sse.status).toBe(200);
    // Both see the first line while the task still waits at its gate.
    await cli.waitForOutput('first line', 60_000);
    await cli.waitForOutput('oops', 60_000);
    await until(async () => sse.text() === 'first line\n', 'the first line over REST', 60_000);
    expect((await record('live.1'))?.state).toBe('running');
    writeFileSync(gate, '');
    expect(await cli.exited()).toBe(0);
    // stdout and stderr are the task's, each in its own order (their interleaving is the terminal's).
    expect(cli.output.replace('oops\n', '')).toBe('first line\nsecond line\n');
    expect(cli.output).toContain('oops\n');
    await sse.done;
    expect(sse.text()).toBe('first line\nsecond line\n');
    expect(sse.events.at(-1)).toMatchObject({
      event: 'end',
      id: '23',
      data: { offset: 23, state: 'failed', exitCode: 3, droppedBytes: 0 },
    });
    // Each id is where to resume: the next data starts there.
    const data = sse.events.filter((e) => e.event === 'data');
    for (const [i, e] of data.entries())
      expect(e.data.offset).toBe(i === 0 ? 0 : Number(data[i - 1]!.id));

    // Resumable: from an offset, over REST (once and following) and cpctrl -o json.
    const rest = await get('/api/logs/live.1?stream=stdout&from=6');
    expect(rest.status).toBe(200);
    expect(await rest.text()).toBe('line\nsecond line\n');
    expect(rest.headers.get('x-cp-log-source')).toBe('nats');
    expect(rest.headers.get('x-cp-log-offset')).toBe('6');
    expect(rest.headers.get('x-cp-log-next')).toBe('23');
    expect(rest.headers.get('x-cp-log-ended')).toBe('failed');
    const again = new Follow(
      `${api}/api/logs/live.1?stream=stdout&follow=1&from=11`,
      stack.apiToken,
    );
    await again.done;
    expect(again.text()).toBe('second line\n');
    const json = cpctrl(
      ['-o', 'json', 'logs', 'live.1', '--stream', 'stdout', '--from', '11'],
      'cpctrl-json',
    );
    expect(await json.exited()).toBe(0);
    const lines = json.output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toEqual([
      {
        taskId: 'live.1',
        kind: 'data',
        stream: 'stdout',
        offset: 11,
        attempt: 1,
        bytes: 12,
        text: 'second line\n',
      },
      {
        taskId: 'live.1',
        kind: 'end',
        stream: 'stdout',
        offset: 23,
        state: 'failed',
        exitCode: 3,
        droppedBytes: 0,
      },
    ]);
    // MajorDomo could not have read the file: it is outside its CP_LOG_ROOTS.
    const rec = await record('live.1');
    expect(readFileSync(rec!.stdoutPath!, 'utf8')).toBe('first line\nsecond line\n');
  });

  it('refuses an unknown task clearly, in cpctrl and REST', async () => {
    const cli = cpctrl(['logs', 'no-such-task'], 'cpctrl-unknown');
    expect(await cli.exited()).toBe(1);
    expect(cli.output).toMatch(/no task no-such-task in project tasklogs; `cpctrl task list`/);
    const res = await get('/api/logs/no-such-task');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('CP_UNKNOWN_TASK');
    // The token is taken from the Authorization header only.
    const url = await fetch(`${api}/api/logs/live.1?follow=1&token=${stack.apiToken}`);
    expect(url.status).toBe(401);
  });

  it('cuts a log at its cap with a truncated marker', async () => {
    await submit('local', {
      taskId: 'big-1',
      cwd: stack.workspace,
      command: `head -c 100000 /dev/zero | tr '\\0' y`,
    });
    await until(
      async () =>
        (await get('/api/logs/big-1?stream=stdout')).headers.get('x-cp-log-ended') !== null,
      'the capped log to end',
      60_000,
    );
    const res = await get('/api/logs/big-1?stream=stdout');
    expect(res.headers.get('x-cp-log-truncated')).toBe(String(CAP));
    expect(res.headers.get('x-cp-log-ended')).toBe('finished');
    expect(res.headers.get('x-cp-log-dropped')).toBe(String(100_000 - CAP));
    expect(await res.text()).toBe('y'.repeat(CAP));
    const cli = cpctrl(['logs', 'big-1', '--stream', 'stdout'], 'cpctrl-big');
    expect(await cli.exited()).toBe(0);
    expect(cli.output).toContain(`cut at ${CAP} bytes`);
  });

  it('ends an output the task left empty from its end record: nothing on NATS for it', async () => {
    await submit('local', { taskId: 'quiet.1', cwd: stack.workspace, command: 'true' });
    await until(async () => (await record('quiet.1'))?.state === 'finished', 'quiet.1 to end');
    expect((await record('quiet.1'))?.emptyLogs).toEqual(['stdout', 'stderr']);
    // Read once: ended, nothing in it (MajorDomo cannot read the runner's files: CP_LOG_ROOTS).
    const res = await get('/api/logs/quiet.1?stream=stderr');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    expect(res.headers.get('x-cp-log-source')).toBe('nats');
    expect(res.headers.get('x-cp-log-ended')).toBe('finished');
    // Followed: the end at once, with the task's state.
    const sse = new Follow(`${api}/api/logs/quiet.1?stream=stdout&follow=1`, stack.apiToken);
    await sse.done;
    expect(sse.events).toEqual([
      {
        id: '0',
        event: 'end',
        data: { offset: 0, state: 'finished', exitCode: 0, droppedBytes: 0 },
      },
    ]);
    const cli = cpctrl(['-o', 'json', 'logs', '-f', 'quiet.1'], 'cpctrl-quiet');
    expect(await cli.exited()).toBe(0);
    expect(
      cli.output
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual(
      (['stdout', 'stderr'] as const).map((stream) => ({
        taskId: 'quiet.1',
        kind: 'end',
        stream,
        offset: 0,
        state: 'finished',
        exitCode: 0,
        droppedBytes: 0,
      })),
    );
    // Its two end markers are not on the stream: the record said it all.
    const both = subjects.taskLogBoth(stack.project, 'local', 'quiet.1');
    const info = await stack.bus.jsm.streams.info(streams.taskLogs(stack.project), {
      subjects_filter: both,
    });
    expect(info.state.subjects ?? {}).toEqual({});
  });

  it('follows a slurm_sudo task live, its log read as the job user', async () => {
    const gate = join(gates, 'hpc-1');
    await submit('hpc', {
      taskId: 'hpc-1',
      cwd: shared.join('ws'),
      command: `echo on the cluster; whoami; while [ ! -e ${gate} ]; do sleep 0.1; done; echo done`,
    });
    const sse = new Follow(`${api}/api/logs/hpc-1?stream=stdout&follow=1`, stack.apiToken);
    const cli = cpctrl(['logs', '-f', 'hpc-1', '--stream', 'stdout'], 'cpctrl-hpc');
    await until(
      async () => sse.text() === 'on the cluster\ncpuser\n',
      'the first lines from SLURM',
      120_000,
    ).catch(async (err) => {
      throw new Error(
        `${err}\nstatus ${await Promise.race([sse.status, Promise.resolve('pending')])}, cpctrl: ${cli.output}\nrecord: ${JSON.stringify(await record('hpc-1'))}\nseen: ${JSON.stringify(sse.events)}\n${stack.logs()}`,
      );
    });
    await cli.waitForOutput('cpuser', 60_000);
    expect((await record('hpc-1'))?.state).toBe('running');
    writeFileSync(gate, '');
    await sse.done;
    expect(sse.text()).toBe('on the cluster\ncpuser\ndone\n');
    expect(sse.events.at(-1)).toMatchObject({
      event: 'end',
      data: { state: 'finished', exitCode: 0 },
    });
    expect(await cli.exited()).toBe(0);
    expect(cli.output).toBe('on the cluster\ncpuser\ndone\n');
    const rest = await get('/api/logs/hpc-1?stream=stdout&from=15');
    expect(await rest.text()).toBe('cpuser\ndone\n');
  });

  it("follows a slurm_ssh task live, its log read over the runner's SSH connection", async () => {
    const gate = join(gates, 'ssh-1');
    await submit('hpc-ssh', {
      taskId: 'ssh-1',
      cwd: shared.join('ws'),
      command: `echo over ssh >&2; while [ ! -e ${gate} ]; do sleep 0.1; done; echo bye >&2; exit 4`,
    });
    const sse = new Follow(`${api}/api/logs/ssh-1?stream=stderr&follow=1`, stack.apiToken);
    expect(await sse.status).toBe(200);
    await until(async () => sse.text() === 'over ssh\n', 'the first line over SSH', 120_000).catch(
      async (err) => {
        throw new Error(
          `${err}\nrecord: ${JSON.stringify(await record('ssh-1'))}\n${stack.logs()}`,
        );
      },
    );
    expect((await record('ssh-1'))?.state).toBe('running');
    writeFileSync(gate, '');
    await sse.done;
    expect(sse.text()).toBe('over ssh\nbye\n');
    expect(sse.events.at(-1)).toMatchObject({
      event: 'end',
      data: { state: 'failed', exitCode: 4 },
    });
  });

  it('keeps a log whole across a runner killed -9 mid-task: no gap, no repeat', async () => {
    const gate = join(gates, 'crash-1');
    await submit('local', {
      taskId: 'crash-1',
      cwd: stack.workspace,
      command: `i=0; while [ ! -e ${gate} ]; do i=$((i+1)); echo "line $i"; sleep 0.01; done; echo last`,
    });
    // Another task ends while the runner is dead: its last lines and its end come after.
    const gate2 = join(gates, 'crash-2');
    await submit('local', {
      taskId: 'crash-2',
      cwd: stack.workspace,
      command: `echo before; while [ ! -e ${gate2} ]; do sleep 0.01; done; echo while the runner was down; exit 5`,
    });
    const sse = new Follow(`${api}/api/logs/crash-1?stream=stdout&follow=1`, stack.apiToken);
    const sse2 = new Follow(`${api}/api/logs/crash-2?stream=stdout&follow=1`, stack.apiToken);
    await until(async () => sse.text().includes('line 20\n'), 'some lines before the kill', 60_000);
    await until(async () => sse2.text() === 'before\n', 'the other task started', 60_000);
    await stack.kill9('runner');
    writeFileSync(gate2, '');
    const rec2 = (await record('crash-2'))!;
    const handle2 = rec2.handle as { dir: string };
    await until(
      async () => existsSync(join(handle2.dir, 'exit')),
      'the other task to end while the runner is down',
    );
    // The task goes on writing while its runner is dead.
    const rec = (await record('crash-1'))!;
    const before = readFileSync(rec.stdoutPath!, 'utf8').length;
    await until(
      async () => readFileSync(rec.stdoutPath!, 'utf8').length > before + 100,
      'the task to write on',
    );
    await stack.start('runner', runnerLocal);
    await until(async () => sse.text().length > before + 100, 'the log taken up again', 60_000);
    writeFileSync(gate, '');
    await sse.done;
    const file = readFileSync(rec.stdoutPath!, 'utf8');
    expect(file.endsWith('last\n')).toBe(true);
    expect(sse.text()).toBe(file);
    expect(sse.events.filter((e) => e.event === 'missing' || e.event === 'restart')).toEqual([]);
    expect(sse.events.at(-1)).toMatchObject({ event: 'end', data: { state: 'finished' } });
    await sse2.done;
    expect(sse2.text()).toBe('before\nwhile the runner was down\n');
    expect(sse2.events.at(-1)).toMatchObject({
      event: 'end',
      data: { state: 'failed', exitCode: 5 },
    });
    // On the stream itself: every piece once, indices and offsets contiguous.
    const subject = subjects.taskLog(stack.project, 'local', 'crash-1', 'stdout');
    const stream = streams.taskLogs(stack.project);
    const info = await stack.bus.jsm.streams.info(stream, { subjects_filter: subject });
    const count = info.state.subjects?.[subject] ?? 0;
    const consumer = await stack.bus.js.consumers.get(stream, { filter_subjects: subject });
    let offset = 0;
    for (let i = 0; i < count; i++) {
      const m = await consumer.next({ expires: 5_000 });
      const body = (m!.json() as { body: TaskLogChunk }).body;
      expect([body.index, body.offset]).toEqual([i, offset]);
      offset += Buffer.from(body.data, 'base64').length;
    }
    await consumer.delete();
    expect(offset).toBe(Buffer.byteLength(file));
  });
});

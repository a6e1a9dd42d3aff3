import {
  Bus,
  isPermissionDenied,
  quietLogger,
  readTaskLog,
  StorageQuotaError,
  type TaskLogEvent,
} from '@computepods/bus';
import { buckets, streams, subjects } from '@computepods/protocol';
import { NatsServer, TempDir, until } from '@computepods/testkit';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AuthStore,
  type Grant,
  provisionProject,
  provisionRegistry,
  revokeUser,
  serverConfigLines,
  userName,
} from './index.js';

/**
 * The server, not the clients' manners, keeps projects apart and roles in their lane: a real
 * nats-server in operator mode, as `up` runs it, and clients holding each role's credentials.
 */
describe('tenancy and least privilege on a real nats-server in operator mode', () => {
  const dir = new TempDir('cp-tenancy-');
  let store: AuthStore;
  let nats: NatsServer;
  const open: Bus[] = [];
  const logger = quietLogger('tenancy-test');

  async function as(grant: Grant): Promise<Bus> {
    const bus = await Bus.connect({
      servers: nats.url,
      credsFile: await store.grantCreds(grant),
      service: 'test',
      project: grant.project,
      logger,
      discoverable: false,
      giveUpAfterMs: 10_000,
    });
    open.push(bus);
    return bus;
  }

  async function refused(p: Promise<unknown>): Promise<Error> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err, 'the server should have refused this').toBeInstanceOf(Error);
    return err as Error;
  }

  beforeAll(async () => {
    store = await AuthStore.open(dir.join('auth'));
    nats = await NatsServer.start({
      configLines: () => serverConfigLines(store, dir.join('resolver')),
    });
    await provisionRegistry(store, nats.url);
    await provisionProject({ store, servers: nats.url, project: 'alpha' });
    await provisionProject({ store, servers: nats.url, project: 'beta' });
    await provisionProject({
      store,
      servers: nats.url,
      project: 'tiny',
      limits: { diskBytes: 256 * 1024 },
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(open.map((b) => b.close()));
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('refuses a connection without credentials', async () => {
    const err = await refused(connect({ servers: nats.url, timeout: 3_000 }));
    expect(err.message).toMatch(/authorization/i);
    // The services' connect says what to do instead of retrying for ever.
    const bus = await refused(
      Bus.connect({ servers: nats.url, service: 'x', project: 'alpha', logger, credsFile: '' }),
    );
    expect(bus).toMatchObject({ code: 'CP_NATS_AUTH' });
    expect(bus.message).toMatch(/needs credentials: set NATS_CREDS/);
  });

  it("keeps one project's streams, buckets and subjects out of another's sight", async () => {
    const a = await as({ role: 'admin', project: 'alpha' });
    const b = await as({ role: 'admin', project: 'beta' });
    // Even beta's admin cannot see alpha's streams: they are in another account.
    const err = await refused(b.jsm.streams.info(streams.files('alpha')));
    expect(err.message).toMatch(/stream not found/);
    // A publish on alpha's subject from beta's side lands nowhere near alpha.
    const before = (await a.jsm.streams.info(streams.files('alpha'))).state.messages;
    const seen: string[] = [];
    const sub = a.nc.subscribe('cp.>', {
      callback: (_e, m) => {
        seen.push(m.subject);
      },
    });
    // alpha's SUB is in place before beta publishes (another connection): unflushed, the server
    // could take the publish first and the test would pass even if it crossed accounts.
    await a.nc.flush();
    b.nc.publish(subjects.filesChanged('alpha', 'pod1'), '{}');
    await b.nc.flush();
    await a.nc.flush();
    sub.unsubscribe();
    expect(seen).toEqual([]);
    expect((await a.jsm.streams.info(streams.files('alpha'))).state.messages).toBe(before);
    // alpha's records cannot be read from beta even by bucket name.
    await a.nc.flush();
    const kvA = await a.kv(buckets.artefacts('alpha'), z.unknown());
    await kvA.put('src/secret.txt', { secret: true });
    const kvFromB = await b.kv(buckets.artefacts('alpha'), z.unknown());
    expect(await kvFromB.get('src/secret.txt')).toBeUndefined();
  });

  it("lets a fswatcher publish its pod's file changes and logs, and refuses it tasks", async () => {
    const fsw = await as({ role: 'fswatcher', project: 'alpha', scope: 'pod1' });
    await fsw.js.publish(subjects.filesChanged('alpha', 'pod1'), '{}');
    const err = await refused(
      fsw.publish(
        'task.submitted',
        subjects.tasks('alpha', 'local'),
        { taskId: 't1', resource: 'local', command: 'touch /tmp/PWN', cwd: '/tmp' },
        { retryForMs: 0 },
      ),
    );
    expect(isPermissionDenied(err)).toBe(true);
    // Another pod's changes are not its to announce.
    const forged = await refused(
      fsw.js.publish(subjects.filesChanged('alpha', 'pod2'), '{}', { timeout: 2_000 }),
    );
    expect(isPermissionDenied(forged)).toBe(true);
    // Another pod's log subject is not its to write: the server closes the publish with an error.
    const errors: Error[] = [];
    const done = (async () => {
      for await (const s of fsw.nc.status()) if (s.type === 'error') errors.push(s.error as Error);
    })();
    fsw.nc.publish(subjects.logs('alpha', 'pod2'), 'x');
    await fsw.nc.flush();
    // The -ERR came before the flush's PONG; the status loop reads it in its own turn.
    await until(() => errors.some(isPermissionDenied), 'the permissions violation reported');
    void done;
  });

  it("lets a fswatcher follow MajorDomo's artefact states and no other subject; not inotify2nats", async () => {
    const admin = await as({ role: 'admin', project: 'alpha' });
    const fsw = await as({ role: 'fswatcher', project: 'alpha', scope: 'pod1' });
    const i2n = await as({ role: 'inotify2nats', project: 'alpha', scope: 'laptop' });
    /** What a subscription receives, and the errors it is closed with. */
    const follow = (bus: Bus, subject: string) => {
      const got: string[] = [];
      const errors: Error[] = [];
      bus.nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) errors.push(err);
          else got.push(m.subject);
        },
      });
      return { got, errors };
    };
    const states = follow(fsw, subjects.artefactState('alpha'));
    const results = follow(fsw, subjects.buildResult('alpha'));
    const everything = follow(fsw, 'cp.alpha.>');
    const laptop = follow(i2n, subjects.artefactState('alpha'));
    // The SUBs are in place (or refused) before anything is published.
    await Promise.all([fsw.nc.flush(), i2n.nc.flush()]);
    admin.nc.publish(subjects.artefactState('alpha'), '{}');
    admin.nc.publish(subjects.buildResult('alpha'), '{}');
    await admin.nc.flush();
    await until(() => states.got.length === 1, 'the artefact state received');
    await until(
      () => [results, everything, laptop].every((s) => s.errors.some(isPermissionDenied)),
      'the other subscriptions refused',
    );
    await Promise.all([fsw.nc.flush(), i2n.nc.flush()]);
    expect(states).toEqual({ got: [subjects.artefactState('alpha')], errors: [] });
    expect([results.got, everything.got, laptop.got]).toEqual([[], [], []]);
  });

  it('refuses inotify2nats any read: no artefact records, no task records', async () => {
    const i2n = await as({ role: 'inotify2nats', project: 'alpha', scope: 'laptop' });
    const kv = await i2n.kv(buckets.artefacts('alpha'), z.unknown());
    expect(isPermissionDenied(await refused(kv.get('src/secret.txt')))).toBe(true);
    const tasks = await i2n.kv(buckets.tasks('alpha'), z.unknown());
    expect(isPermissionDenied(await refused(tasks.get('t1')))).toBe(true);
  });

  it('lets a viewer ask questions but not request builds or control tasks', async () => {
    const viewer = await as({ role: 'viewer', project: 'alpha', scope: 'vera' });
    // No MajorDomo runs here: a permitted request finds no responder, a refused one is denied.
    const status = await refused(viewer.nc.request(subjects.api('alpha', 'status'), '{}'));
    expect(isPermissionDenied(status)).toBe(false);
    const build = await refused(viewer.nc.request(subjects.api('alpha', 'build'), '{}'));
    expect(isPermissionDenied(build)).toBe(true);
    const control = await refused(viewer.nc.request(subjects.taskControl('alpha'), '{}'));
    expect(isPermissionDenied(control)).toBe(true);
    const member = await as({ role: 'member', project: 'alpha', scope: 'mia' });
    const ok = await refused(member.nc.request(subjects.api('alpha', 'build'), '{}'));
    expect(isPermissionDenied(ok)).toBe(false);
  });

  it("keeps a chef to its own rules, queue and tasks: no config, no other chef's rules", async () => {
    const admin = await as({ role: 'admin', project: 'alpha' });
    const config = await admin.kv(buckets.config('alpha'), z.unknown());
    await config.put('queue.local', { any: 1 });
    const chef = await as({ role: 'chef', project: 'alpha', scope: 'latex' });
    await (await chef.kv(buckets.rules('alpha'), z.unknown())).put('latex', { rules: [] });
    const rules = await chef.kv(buckets.rules('alpha'), z.unknown());
    expect(isPermissionDenied(await refused(rules.put('c', { rules: [] })))).toBe(true);
    const cfg = await chef.kv(buckets.config('alpha'), z.unknown());
    expect(await cfg.get('queue.local')).toBeDefined();
    expect(isPermissionDenied(await refused(cfg.put('queue.local', { evil: 1 })))).toBe(true);
    // Another chef's durable consumer is not its to read.
    const other = await refused(chef.jsm.consumers.info(streams.builds('alpha'), 'chef-c'));
    expect(isPermissionDenied(other)).toBe(true);
  });

  it("keeps MajorDomo from writing build results, the chefs' record, while it reads them", async () => {
    const chef = await as({ role: 'chef', project: 'alpha', scope: 'latex' });
    await (await chef.kv(buckets.builds('alpha'), z.unknown())).put('b-1', { status: 'ok' });
    const md = await as({ role: 'majordomo', project: 'alpha' });
    const builds = await md.kv(buckets.builds('alpha'), z.unknown());
    expect((await builds.get('b-1'))?.value).toEqual({ status: 'ok' });
    expect(isPermissionDenied(await refused(builds.put('b-1', { status: 'forged' })))).toBe(true);
  });

  it('lets MajorDomo read stored file batches by sequence (a batch delivered again), not tasks', async () => {
    const fsw = await as({ role: 'fswatcher', project: 'alpha', scope: 'pod1' });
    const ack = await fsw.js.publish(subjects.filesChanged('alpha', 'pod1'), '{"batch":1}');
    const md = await as({ role: 'majordomo', project: 'alpha' });
    const stored = await md.jsm.streams.getMessage(streams.files('alpha'), { seq: ack.seq });
    expect(stored?.string()).toBe('{"batch":1}');
    const err = await refused(md.jsm.streams.getMessage(streams.tasks('alpha'), { seq: 1 }));
    expect(isPermissionDenied(err)).toBe(true);
  });

  it("keeps a runner to its own queue: it cannot take another queue's tasks or dispatch builds", async () => {
    const runner = await as({ role: 'runner', project: 'alpha', scope: 'gpu' });
    const other = await refused(runner.jsm.consumers.info(streams.tasks('alpha'), 'runner-local'));
    expect(isPermissionDenied(other)).toBe(true);
    const err = await refused(
      runner.js.publish(subjects.buildRequest('alpha', 'latex'), '{}', { timeout: 2_000 }),
    );
    expect(isPermissionDenied(err)).toBe(true);
  });

  it("keeps task logs to their queue's runner as writer and their project's people as readers", async () => {
    const subject = subjects.taskLog('alpha', 'local', 'job.1', 'stdout');
    const piece = (bus: Bus) =>
      bus.encode('task.log', {
        taskId: 'job.1',
        stream: 'stdout',
        offset: 0,
        index: 0,
        attempt: 1,
        fileOffset: 0,
        data: Buffer.from('secret output\n').toString('base64'),
      });
    const runner = await as({ role: 'runner', project: 'alpha', scope: 'local' });
    expect(
      (await runner.js.publish(subject, piece(runner), { timeout: 2_000 })).seq,
    ).toBeGreaterThan(0);
    // Where its log stands, after a restart: its own queue's, not another's.
    expect(
      await runner.jsm.direct.getMessage(streams.taskLogs('alpha'), { last_by_subj: subject }),
    ).not.toBeNull();
    const other = subjects.taskLog('alpha', 'gpu', 'x', 'stdout');
    const peek = await refused(
      runner.jsm.direct.getMessage(streams.taskLogs('alpha'), { last_by_subj: other }),
    );
    expect(isPermissionDenied(peek)).toBe(true);
    // Another queue's runner, a viewer, a member and a fswatcher may not write it.
    for (const grant of [
      { role: 'runner', project: 'alpha', scope: 'gpu' },
      { role: 'viewer', project: 'alpha', scope: 'vera' },
      { role: 'member', project: 'alpha', scope: 'mia' },
      { role: 'fswatcher', project: 'alpha', scope: 'pod1' },
    ] as const) {
      const bus = await as(grant);
      const err = await refused(bus.js.publish(subject, piece(bus), { timeout: 2_000 }));
      expect(isPermissionDenied(err), `${grant.role} publishing a task log`).toBe(true);
      // The runner's own path (Bus.jsPublish: one reply subscription under its inbox prefix).
      const acked = await refused(bus.jsPublish(subject, piece(bus), { timeoutMs: 2_000 }));
      expect(isPermissionDenied(acked), `${grant.role} publishing a task log (jsPublish)`).toBe(
        true,
      );
    }
    // A viewer reads it.
    const viewer = await as({ role: 'viewer', project: 'alpha', scope: 'vera' });
    const seen: TaskLogEvent[] = [];
    await readTaskLog(viewer, {
      queue: 'local',
      taskId: 'job.1',
      streams: ['stdout'],
      follow: false,
      onEvent: (e) => {
        seen.push(e);
      },
    });
    expect(seen.map((e) => (e.kind === 'data' ? e.data.toString() : e.kind))).toEqual([
      'secret output\n',
      'sofar',
    ]);
    // beta, even its admin, cannot reach alpha's logs: not by stream, not by subject.
    const beta = await as({ role: 'admin', project: 'beta' });
    const err = await refused(beta.jsm.streams.info(streams.taskLogs('alpha')));
    expect(err.message).toMatch(/stream not found/);
    const betaSeen: string[] = [];
    const sub = beta.nc.subscribe('cp.alpha.tasklog.>', {
      callback: (_e, m) => {
        betaSeen.push(m.subject);
      },
    });
    await beta.nc.flush();
    // Through the runner's own path (its reply subscription is under its inbox prefix).
    await runner.jsPublish(
      subject,
      runner.encode('task.log', {
        taskId: 'job.1',
        stream: 'stdout',
        offset: 14,
        index: 1,
        attempt: 1,
        fileOffset: 14,
        mark: 'end',
        state: 'finished',
        exitCode: 0,
      }),
      { timeoutMs: 2_000 },
    );
    await beta.nc.flush();
    sub.unsubscribe();
    expect(betaSeen).toEqual([]);
  });

  it('revokes a person: their credentials are refused from then on, their open connection closed', async () => {
    const grant = { role: 'member', project: 'beta', scope: 'rita' } as const;
    const rita = await as(grant);
    expect((await rita.jsm.streams.info(streams.files('beta'))).config.name).toBe('cp_beta_files');
    const closed = rita.nc.closed();
    expect(await revokeUser(store, nats.url, 'beta', userName(grant))).toBe(1);
    await closed;
    const again = await refused(
      Bus.connect({
        servers: nats.url,
        credsFile: store.credsPath(grant),
        service: 'x',
        project: 'beta',
        logger,
        giveUpAfterMs: 2_000,
      }),
    );
    expect(again).toMatchObject({ code: 'CP_NATS_AUTH' });
    // Others of the project are untouched, and new credentials for the same person work.
    await as({ role: 'viewer', project: 'beta', scope: 'vera' });
    await (await as(grant)).close();
  });

  it('refuses a project over its storage quota with a clear error, while others go on', async () => {
    const tiny = await as({ role: 'admin', project: 'tiny' });
    const alpha = await as({ role: 'admin', project: 'alpha' });
    const pod = 'x'.repeat(150);
    const events = Array.from({ length: 100 }, (_, i) => ({
      kind: 'changed' as const,
      path: `src/${'d'.repeat(200)}/${i}.txt`,
      size: 1,
      mtimeNs: '1',
      sha256: 'a'.repeat(64),
    }));
    let quota: StorageQuotaError | undefined;
    for (let i = 0; i < 100 && !quota; i++) {
      await tiny
        .publish(
          'files.changed',
          subjects.filesChanged('tiny', 'pod1'),
          { pod, events },
          { retryForMs: 0 },
        )
        .catch((err: unknown) => {
          if (err instanceof StorageQuotaError) quota = err;
          else throw err;
        });
    }
    expect(quota?.code).toBe('CP_STORAGE_QUOTA');
    expect(quota?.message).toMatch(/project "tiny" is over its JetStream storage quota/);
    const ack = await alpha.publish(
      'files.changed',
      subjects.filesChanged('alpha', 'pod1'),
      { pod: 'p', events: events.slice(0, 1) },
      { retryForMs: 0 },
    );
    expect(ack.seq).toBeGreaterThan(0);
  });
});

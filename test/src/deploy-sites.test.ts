import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, posix } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AuthStore } from '@computepods/auth';
import { ManagedProcess, requireBinary, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Stack } from './stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const deploy = join(root, 'deploy');
const read = (p: string) => readFileSync(join(deploy, p), 'utf8');
const requireRoot = createRequire(join(root, 'package.json'));
// The lines test/src/stack.ts waits for: each service says it is ready.
const READY = {
  majordomo: /"msg":"majordomo ready"/,
  chef: /"msg":"rules declared"/,
  runner: /"msg":"runner ready"/,
  fswatcher: /"msg":"watching workspace"/,
} as const;

/**
 * deploy/ for real sites (#13): the systemd units, the Kubernetes manifests and the Helm values
 * for NATS, the Compose file and the Containerfile. Each is checked by the tool or schema that
 * judges it (systemd-analyze, the Kubernetes OpenAPI schemas through kubernetes-models, the
 * Compose specification through dclint, nats-server -t); what needs a container engine or a
 * cluster is not checked here (deploy/README.md says what).
 */
describe('deploy/ for real sites', () => {
  const dir = new TempDir('cp-deploy-sites-');
  afterAll(() => dir[Symbol.dispose]());

  /** The README's auth.conf for a server that reads operator.jwt at `operatorPath`. */
  let authDir: string | undefined;
  async function authConf(resolverDir: string, operatorPath: string): Promise<string> {
    if (!authDir) {
      authDir = dir.join('auth');
      await AuthStore.open(authDir);
    }
    const out = spawnSync(
      process.execPath,
      [
        join(root, 'apps/cpctrl/bin/cpctrl.js'),
        'creds',
        'server-config',
        '--resolver-dir',
        resolverDir,
      ],
      { cwd: root, env: { ...process.env, CP_AUTH_DIR: authDir }, encoding: 'utf8' },
    );
    expect(out.status, out.stderr).toBe(0);
    // deploy/README.md: the operator line names where the server finds operator.jwt.
    const text = out.stdout.replace(/^operator: .*$/m, `operator: ${JSON.stringify(operatorPath)}`);
    expect(text).toContain(`operator: ${JSON.stringify(operatorPath)}`);
    return text;
  }

  function natsValid(conf: string): void {
    const bin = requireBinary(
      'nats-server',
      "install Debian's nats-server (bash scripts/setup does)",
    );
    const t = spawnSync(bin, ['-c', conf, '-t'], { encoding: 'utf8' });
    expect(`${t.stdout}${t.stderr}`, `${conf}: ${t.stdout}${t.stderr}`).toMatch(/is valid/);
  }

  describe('systemd units', () => {
    const unitDir = join(deploy, 'systemd');
    const units = [
      ...readdirSync(unitDir).filter((f) => f.endsWith('.service')),
      ...readdirSync(join(unitDir, 'user')).map((f) => `user/${f}`),
    ];
    // Settings that make systemd set no_new_privs for a non-root service (systemd.exec(5)):
    // any of them stops sudo.
    const impliesNoNewPrivileges =
      /^(NoNewPrivileges=yes|SystemCallFilter|SystemCallArchitectures|RestrictAddressFamilies|RestrictNamespaces|PrivateDevices=yes|ProtectKernelTunables=yes|ProtectKernelModules=yes|ProtectKernelLogs=yes|ProtectClock=yes|MemoryDenyWriteExecute|RestrictRealtime=yes|RestrictSUIDSGID=yes|DynamicUser=yes|LockPersonality=yes)/m;

    /** The unit as systemd would load it here: the checkout in place of /opt/computepods. */
    function place(unit: string, text: string, sub = 'units'): string {
      mkdirSync(dir.join(sub), { recursive: true });
      const name = basename(unit).replace('@.service', '@demo.service');
      const path = dir.join(sub, name);
      writeFileSync(path, text.replaceAll('/opt/computepods/', root));
      return path;
    }

    /** systemd-analyze verify: exit 0 and not one warning (it warns, exit 0, on a bad value). */
    function verify(path: string): string {
      const bin = requireBinary('systemd-analyze', "install Debian's systemd");
      const r = spawnSync(bin, ['verify', '--man=no', path], { encoding: 'utf8' });
      return r.status === 0 ? r.stderr.trim() : `exit ${r.status}: ${r.stderr}`;
    }

    it('pass systemd-analyze verify, with ExecStart the checkout entrypoint', () => {
      expect(units.length).toBeGreaterThanOrEqual(6);
      for (const unit of units) {
        const text = readFileSync(join(unitDir, unit), 'utf8');
        expect(text, unit).toMatch(
          /^ExecStart=\/opt\/computepods\/deploy\/bin\/computepods-service (majordomo|chef|runner|fswatcher|inotify2nats)$/m,
        );
        expect(verify(place(unit, text)), unit).toBe('');
      }
    });

    it('a broken unit fails the same check', () => {
      const good = read('systemd/computepods-chef@.service');
      const typo = place(
        'typo@.service',
        good.replace('ProtectHome=yes', 'ProtectHomes=yes'),
        'bad',
      );
      expect(verify(typo)).toMatch(/Unknown key 'ProtectHomes'/);
      const badValue = place(
        'bool@.service',
        good.replace('NoNewPrivileges=yes', 'NoNewPrivileges=perhaps'),
        'bad',
      );
      expect(verify(badValue)).toMatch(/Failed to parse boolean value/);
      const missing = place(
        'exec@.service',
        good.replace('deploy/bin/computepods-service', 'deploy/bin/no-such-entrypoint'),
        'bad',
      );
      expect(verify(missing)).toMatch(/is not executable/);
    });

    it('run the services as computepods, credentials through LoadCredential, sandboxed', () => {
      const services = ['majordomo', 'chef', 'runner', 'runner-sudo', 'fswatcher'];
      for (const s of services) {
        const text = read(`systemd/computepods-${s}@.service`);
        const program = s === 'runner-sudo' ? 'runner' : s;
        expect(text, s).toMatch(/^User=computepods$/m);
        expect(text, s).toContain(`EnvironmentFile=/etc/computepods/${program}@%i.env`);
        expect(text, s).toContain(
          `LoadCredential=nats.creds:/etc/computepods/creds/${program}@%i.creds`,
        );
        expect(text, s).toMatch(/^Environment=NATS_CREDS=%d\/nats\.creds$/m);
        // The credentials' path is named, never their content.
        expect(text, s).not.toMatch(/-----BEGIN|eyJ[0-9A-Za-z_-]{20,}/);
        if (s === 'runner-sudo') {
          // sudo needs setuid to work: nothing here may set no_new_privs.
          expect(text.match(impliesNoNewPrivileges)?.[0], s).toBeUndefined();
          expect(text).toMatch(/ALL=\(cpjobs\) NOPASSWD/);
        } else {
          expect(text, s).toMatch(/^NoNewPrivileges=yes$/m);
          expect(text, s).toMatch(/^ProtectSystem=strict$/m);
          // V8's JIT writes and then runs code: this would kill every service at start.
          expect(text, s).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
        }
      }
    });

    it('are rated by systemd-analyze security: the sandboxed ones well below exposed', () => {
      const bin = requireBinary('systemd-analyze', "install Debian's systemd");
      const score = (unit: string) => {
        const path = place(unit, read(`systemd/${unit}`), 'security');
        const r = spawnSync(bin, ['security', '--offline=yes', '--no-pager', path], {
          encoding: 'utf8',
        });
        const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(`${r.stdout}${r.stderr}`);
        expect(m, `${unit}: ${r.stdout}${r.stderr}`).not.toBeNull();
        return Number(m?.[1]);
      };
      for (const s of ['majordomo', 'chef', 'runner', 'fswatcher']) {
        expect(score(`computepods-${s}@.service`), s).toBeLessThanOrEqual(3.0);
      }
      // With sudo allowed, the most it can keep is far less, and it is measured, not hidden.
      expect(score('computepods-runner-sudo@.service')).toBeGreaterThan(3.0);
    });

    it('the sysusers file makes the computepods user the units run as', () => {
      const bin = requireBinary('systemd-sysusers', "install Debian's systemd");
      const sysroot = dir.join('sysroot');
      mkdirSync(join(sysroot, 'etc'), { recursive: true });
      const r = spawnSync(bin, [`--root=${sysroot}`, join(unitDir, 'computepods.sysusers')], {
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      const passwd = readFileSync(join(sysroot, 'etc/passwd'), 'utf8');
      expect(passwd).toMatch(
        /^computepods:x:\d+:\d+:[^:]*:\/var\/lib\/computepods:\/usr\/sbin\/nologin$/m,
      );
      expect(readFileSync(join(sysroot, 'etc/group'), 'utf8')).toMatch(/^computepods:x:\d+:/m);
    });

    it('the example env files set only variables the programs read', () => {
      const readme = readFileSync(join(root, 'README.md'), 'utf8');
      // What README's configuration table leaves out: TLS (bus) and inotify2nats' own settings.
      const sources = ['packages/bus/src/config.ts', 'apps/inotify2nats/src/settings.ts']
        .map((p) => readFileSync(join(root, p), 'utf8'))
        .join('\n');
      const files = readdirSync(join(unitDir, 'env'));
      expect(files.length).toBeGreaterThanOrEqual(6);
      for (const f of files) {
        const keys = read(`systemd/env/${f}`)
          .split('\n')
          .filter((l) => l.trim() && !l.startsWith('#'))
          .map((l) => /^([A-Z_][A-Z0-9_]*)=/.exec(l)?.[1]);
        for (const k of keys) {
          expect(k, `${f}: a line is not NAME=value`).toBeDefined();
          const known = readme.includes(`\`${k}\``) || new RegExp(`\\b${k}\\b`).test(sources);
          expect(known, `${f}: ${k} is read by no program (README configuration table)`).toBe(true);
        }
      }
    });

    it('the entrypoint starts the named program and refuses others', () => {
      const entry = join(deploy, 'bin/computepods-service');
      accessSync(entry, constants.X_OK);
      const none = spawnSync(entry, ['nonsense'], { encoding: 'utf8' });
      expect(none.status).toBe(64);
      expect(none.stderr).toMatch(/unknown program nonsense/);
      for (const tool of ['cpctrl', 'inotify2nats']) {
        const help = spawnSync(entry, [tool, '--help'], { encoding: 'utf8' });
        expect(help.status, `${tool}: ${help.stderr}`).toBe(0);
        expect(help.stdout).toMatch(new RegExp(`^Usage: ${tool}`));
      }
      // The real service starts and stops on its own configuration check: it was reached.
      const md = spawnSync(entry, ['majordomo'], {
        encoding: 'utf8',
        cwd: dir.path,
        env: { ...process.env, CP_PROJECT: 'Not A Project', CP_LOG_FORMAT: 'json' },
      });
      expect(md.status).not.toBe(0);
      expect(md.stderr).toMatch(/CP_PROJECT must be 1-63 characters.*got \\"Not A Project\\"/);
    });
  });

  type Svc = 'majordomo' | 'chef' | 'runner' | 'fswatcher';
  /** One service as a target starts it: argv (the entrypoint path as deployed) and env. */
  interface Launch {
    svc: Svc;
    argv: string[];
    env: Record<string, string>;
    /** The process's name, when a service runs more than once (a replica). */
    name?: string;
    /** Its ready line, when not READY[svc] (a standby's). */
    ready?: RegExp;
  }

  /**
   * Starts the four services as a target's files say, on a real nats-server in operator mode,
   * each with its role's credentials, and checks they build: a saved src/deploy.txt becomes
   * out/deploy.upper (FSWatcher -> MajorDomo -> chef -> runner -> chef -> MajorDomo). Changed
   * for this machine only: the deployed paths (`paths`, and /opt/computepods: the checkout), the
   * NATS URL (no TLS here, so no NATS_CA), the credentials file (the target's path for it is
   * checked to be set), MajorDomo's address (loopback, a free port) and the chef's rules (the
   * demo's, which need only sh).
   */
  async function runDeployment(
    stack: Stack,
    launches: Launch[],
    paths: Record<string, string>,
  ): Promise<void> {
    expect([...new Set(launches.map((l) => l.svc))].sort()).toEqual([
      'chef',
      'fswatcher',
      'majordomo',
      'runner',
    ]);
    await Promise.all(
      launches.map(async ({ svc, argv, env: given, name = svc, ready = READY[svc] }) => {
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(given)) {
          let value = v;
          for (const [from, to] of Object.entries(paths)) value = value.replaceAll(from, to);
          env[k] = value;
        }
        expect(env.NATS_CREDS, `${svc}: NATS_CREDS`).toBeTruthy();
        expect(env.CP_PROJECT, `${svc}: CP_PROJECT`).toBe(stack.project);
        env.NATS_URL = stack.nats.url;
        delete env.NATS_CA;
        if (svc === 'majordomo')
          Object.assign(env, { CP_HTTP_HOST: '127.0.0.1', CP_HTTP_PORT: '0' });
        if (svc === 'chef') env.CP_CHEF_DEFINITION = join(deploy, 'demo/chef.yaml');
        const scope = {
          majordomo: undefined,
          chef: env.CP_CHEF,
          runner: env.CP_QUEUE,
          fswatcher: env.CP_POD,
        }[svc];
        env.NATS_CREDS = await stack.creds({ role: svc, ...(scope ? { scope } : {}) });
        const [command, ...args] = argv.map((a) => a.replace('/opt/computepods/', root));
        const proc = new ManagedProcess({
          name,
          command: command ?? '',
          args,
          env: { PATH: process.env.PATH, HOME: stack.dir.path, ...env },
          cwd: root,
        });
        stack.procs.set(name, proc);
        await proc.waitForOutput(ready, 90_000);
      }),
    );
    stack.write('src/deploy.txt', 'deployed\n');
    await stack.until('out/deploy.upper');
    expect(readFileSync(join(stack.workspace, 'out/deploy.upper'), 'utf8')).toBe('DEPLOYED\n');
  }

  /** The Containerfile's ENV lines: what every container of the image starts with. */
  function imageEnv(): Record<string, string> {
    const text = read('Containerfile').replace(/\\\n/g, ' ');
    const env: Record<string, string> = {};
    for (const line of text.split('\n').filter((l) => l.startsWith('ENV ')))
      for (const m of line.slice(4).matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g))
        env[m[1] as string] = m[2] as string;
    return env;
  }

  /** The image's entrypoint without tini (which only execs it). */
  function entrypoint(): string {
    const line = read('Containerfile')
      .split('\n')
      .find((l) => l.startsWith('ENTRYPOINT '));
    return (JSON.parse(line?.slice('ENTRYPOINT '.length) ?? '[]') as string[]).at(-1) ?? '';
  }

  describe('the systemd example configuration, run', () => {
    /** KEY=VALUE lines, as systemd's EnvironmentFile= reads ours (no quotes, no expansion). */
    const envFile = (path: string): Record<string, string> =>
      Object.fromEntries(
        read(path)
          .split('\n')
          .filter((l) => l.trim() && !l.startsWith('#'))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );

    it("the four services start from the entrypoint with the units' environment and build", async () => {
      // What systemd would give each process: the shared env file, the instance's, the unit's
      // Environment= lines (its credential in %d), ExecStart and WorkingDirectory.
      await using stack = await Stack.start('demo');
      const instances = {
        majordomo: 'majordomo@demo',
        chef: 'chef@demo-latex',
        runner: 'runner@demo-local',
        fswatcher: 'fswatcher@demo-pod-a',
      } as const;
      const launches = Object.entries(instances).map(([svc, instance]): Launch => {
        const unit = read(`systemd/computepods-${svc}@.service`);
        const env: Record<string, string> = {
          ...envFile('systemd/env/computepods.env.example'),
          ...envFile(`systemd/env/${instance}.env.example`),
        };
        for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm))
          env[m[1] as string] = m[2] as string;
        expect(env.NATS_CREDS, svc).toBe('%d/nats.creds');
        const exec = /^ExecStart=(\S+) (\S+)$/m.exec(unit);
        expect(/^WorkingDirectory=\/opt\/computepods$/m.test(unit), svc).toBe(true);
        return { svc: svc as Svc, argv: [exec?.[1] ?? '', exec?.[2] ?? ''], env };
      });
      await runDeployment(stack, launches, {
        '/srv/computepods/demo/workspace': stack.workspace,
        '/var/lib/computepods/demo': stack.dir.join('state-systemd'),
      });
    }, 240_000);
  });

  describe('Kubernetes', () => {
    type K8sObject = { apiVersion?: string; kind?: string; metadata?: { name?: string } };

    /** Every object validated against its kind's OpenAPI schema (kubernetes-models). */
    async function validate(obj: K8sObject): Promise<void> {
      if (!obj.apiVersion || !obj.kind) throw new Error('an object without apiVersion or kind');
      let mod: Record<string, new (data: unknown) => { validate(): void }>;
      try {
        // Import-only exports: resolved by path, the package's own layout (group/version/Kind).
        const pkg = dirname(requireRoot.resolve('kubernetes-models/package.json'));
        const file = join(pkg, obj.apiVersion, `${obj.kind}.js`);
        mod = await import(/* @vite-ignore */ pathToFileURL(file).href);
      } catch {
        throw new Error(`${obj.apiVersion} ${obj.kind}: no such Kubernetes kind`);
      }
      const Model = mod[obj.kind];
      if (!Model) throw new Error(`${obj.apiVersion} ${obj.kind}: no such Kubernetes kind`);
      new Model(obj).validate();
    }

    const manifests = () =>
      parseAllDocuments(read('kubernetes/computepods.yaml')).map((d) => {
        expect(d.errors, 'YAML errors').toEqual([]);
        return d.toJS() as K8sObject & Record<string, unknown>;
      });

    it('every object is valid against the Kubernetes schemas', async () => {
      const objs = manifests();
      const kinds = objs.map((o) => `${o.kind}/${o.metadata?.name}`);
      for (const want of [
        'Namespace/computepods',
        'Deployment/computepods-majordomo',
        'Deployment/computepods-chef',
        'Deployment/computepods-runner',
        'Deployment/computepods-fswatcher',
        'Service/computepods-majordomo',
      ])
        expect(kinds).toContain(want);
      for (const o of objs)
        await expect(validate(o), `${o.kind}/${o.metadata?.name}`).resolves.toBeUndefined();
    });

    it('a broken manifest fails validation', async () => {
      const deployment = manifests().find((o) => o.kind === 'Deployment') as {
        spec: { replicas: unknown; template: { spec: { containers: Record<string, unknown>[] } } };
      };
      const replicas = structuredClone(deployment);
      replicas.spec.replicas = 'two';
      await expect(validate(replicas as K8sObject)).rejects.toThrow(/replicas must be integer/);
      const unnamed = structuredClone(deployment);
      delete unnamed.spec.template.spec.containers[0]?.name;
      await expect(validate(unnamed as K8sObject)).rejects.toThrow(
        /must have required property name/,
      );
      await expect(validate({ apiVersion: 'apps/v1', kind: 'Deploymnet' })).rejects.toThrow(
        /no such Kubernetes kind/,
      );
    });

    it('secrets are referenced, never written; each one is made in deploy/README.md', () => {
      const objs = manifests();
      expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
      const text = JSON.stringify(objs);
      const names = new Set([
        ...[...text.matchAll(/"secretName":"([^"]+)"/g)].map((m) => m[1]),
        ...[...text.matchAll(/"secretKeyRef":\{"name":"([^"]+)"/g)].map((m) => m[1]),
      ]);
      const values = parseYaml(read('kubernetes/nats-values.yaml'));
      for (const m of JSON.stringify(values).matchAll(/"secretName":"([^"]+)"/g)) names.add(m[1]);
      expect(names.size).toBeGreaterThanOrEqual(6);
      const readme = read('README.md');
      for (const n of names)
        expect(readme, `deploy/README.md must say how to make Secret ${n}`).toMatch(
          new RegExp(`kubectl -n computepods create secret \\S+ ${n}\\b`),
        );
    });

    it('the services run as they must: 2 MajorDomos, one runner and one watcher, restricted', () => {
      const deployments = manifests().filter((o) => o.kind === 'Deployment') as unknown as {
        metadata: { name: string };
        spec: {
          replicas: number;
          strategy: { type: string };
          template: {
            spec: {
              securityContext: { runAsNonRoot: boolean };
              containers: {
                args: string[];
                env: { name: string; value?: string }[];
                securityContext: {
                  allowPrivilegeEscalation: boolean;
                  readOnlyRootFilesystem: boolean;
                };
              }[];
            };
          };
        };
      }[];
      expect(deployments).toHaveLength(4);
      for (const d of deployments) {
        const svc = d.metadata.name.replace('computepods-', '');
        const c = d.spec.template.spec.containers[0];
        expect(c?.args, svc).toEqual([svc]);
        expect(c?.env.find((e) => e.name === 'NATS_CREDS')?.value, svc).toMatch(
          /^\/var\/run\/secrets\//,
        );
        expect(d.spec.template.spec.securityContext.runAsNonRoot, svc).toBe(true);
        expect(c?.securityContext.allowPrivilegeEscalation, svc).toBe(false);
        expect(c?.securityContext.readOnlyRootFilesystem, svc).toBe(true);
        if (svc === 'majordomo') expect(d.spec.replicas).toBe(2);
        else {
          expect(d.spec.replicas, svc).toBe(1);
          expect(d.spec.strategy.type, svc).toBe('Recreate');
        }
      }
    });

    it('the four Deployments start with the image, the ConfigMap and their env, and build', async () => {
      await using stack = await Stack.start('demo');
      const objs = manifests() as unknown as {
        kind: string;
        metadata: { name: string };
        data?: Record<string, string>;
        spec: {
          template: {
            spec: {
              containers: {
                args: string[];
                envFrom?: { configMapRef?: { name: string } }[];
                env: {
                  name: string;
                  value?: string;
                  valueFrom?: {
                    secretKeyRef?: { name: string; key: string };
                    fieldRef?: { fieldPath: string };
                  };
                }[];
                readinessProbe?: { exec?: { command: string[] } };
              }[];
            };
          };
          replicas: number;
        };
      }[];
      const maps = new Map(
        objs.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, o.data]),
      );
      const deployments = objs.filter((o) => o.kind === 'Deployment');
      // Every replica of each Deployment, as its pod would start (a pod name of its own).
      const launches = deployments.flatMap((d) =>
        Array.from({ length: d.spec.replicas }, (_, i): Launch => {
          const c = d.spec.template.spec.containers[0];
          if (!c) throw new Error(`${d.metadata.name}: no container`);
          const pod = `${d.metadata.name}-${i + 1}`;
          const env: Record<string, string> = { ...imageEnv() };
          for (const from of c.envFrom ?? []) {
            const data = maps.get(from.configMapRef?.name ?? '');
            expect(data, `${d.metadata.name}: ConfigMap ${from.configMapRef?.name}`).toBeDefined();
            Object.assign(env, data);
          }
          for (const e of c.env) {
            const ref = e.valueFrom?.secretKeyRef;
            const field = e.valueFrom?.fieldRef?.fieldPath;
            if (field) expect(field, `${d.metadata.name}: ${e.name}`).toBe('metadata.name');
            // A Secret's value (the API token): one the test makes, as the README's openssl does.
            env[e.name] =
              e.value ?? (ref ? `${ref.name}-${ref.key}-made-for-this-test` : field ? pod : '');
          }
          const svc = c.args[0] as Svc;
          return {
            svc,
            argv: [entrypoint(), ...c.args],
            env,
            name: i === 0 ? svc : `${svc}-${i + 1}`,
            // A second MajorDomo stands by once it sees the first lead.
            ...(svc === 'majordomo'
              ? { ready: /"msg":"(majordomo ready|standby: [^"]* leads)/ }
              : {}),
          };
        }),
      );
      expect(launches.filter((l) => l.svc === 'majordomo')).toHaveLength(2);
      await runDeployment(stack, launches, {
        '/srv/computepods/workspace': stack.workspace,
        '/var/lib/computepods': stack.dir.join('state-k8s'),
      });
      // The readiness probe, run in each MajorDomo's environment: the leader is ready, the
      // standby is not (so the Service sends nothing to it).
      const md = deployments.find((d) => d.metadata.name === 'computepods-majordomo');
      const probe = md?.spec.template.spec.containers[0]?.readinessProbe?.exec?.command ?? [];
      expect(probe[0]).toBe('node');
      const token = launches.find((l) => l.svc === 'majordomo')?.env.CP_API_TOKEN ?? '';
      const verdicts = ['majordomo', 'majordomo-2'].map((name) => {
        const out = stack.procs.get(name)?.output ?? '';
        const leads = out.includes('"msg":"majordomo ready"');
        const url = leads
          ? /"url":"(http:[^"]+)"[^\n]*"msg":"HTTP API listening"/.exec(out)?.[1]
          : /"standbyUrl":"(http:[^"]+)"/.exec(out)?.[1];
        expect(url, `${name}: its address`).toBeTruthy();
        const r = spawnSync(process.execPath, probe.slice(1), {
          encoding: 'utf8',
          env: { ...process.env, CP_HTTP_PORT: new URL(String(url)).port, CP_API_TOKEN: token },
        });
        return `${leads ? 'leader' : 'standby'} ${r.status === 0 ? 'ready' : 'not ready'}`;
      });
      expect(verdicts.sort()).toEqual(['leader ready', 'standby not ready']);
    }, 240_000);

    it("the NATS chart's values: JetStream, TLS, and cpctrl's operator lines, which nats-server takes", async () => {
      const v = parseYaml(read('kubernetes/nats-values.yaml'));
      expect(v.config.jetstream.enabled).toBe(true);
      expect(v.config.nats.tls.enabled).toBe(true);
      expect(v.config.cluster.tls.enabled).toBe(true);
      // cpctrl's auth.conf carries the resolver: the chart's must stay off.
      expect(v.config.resolver.enabled).toBe(false);
      const include: string = v.config.merge['00$include'];
      const mount = v.container.patch[0].value;
      const volume = v.podTemplate.patch[0].value;
      expect(mount.name).toBe(volume.name);
      // nats-server reads an include relative to the including file, the chart's nats.conf.
      const included = posix.join('/etc/nats-config', include);
      expect(included.startsWith(`${mount.mountPath}/`), included).toBe(true);
      expect(mount.mountPath.startsWith('/etc/nats-config/'), 'not inside the ConfigMap').toBe(
        false,
      );
      // What the chart renders from these values, with the Secret's files where the mount puts
      // them: the config nats-server must accept (the chart itself is not run here).
      const etc = dir.join('k8s/etc');
      const conf = join(etc, 'nats-config');
      const secret = join(etc, mount.mountPath.slice('/etc/'.length));
      mkdirSync(conf, { recursive: true });
      mkdirSync(secret, { recursive: true });
      const data = dir.join('k8s/data');
      const auth = await authConf('/data/resolver', `${mount.mountPath}/operator.jwt`);
      writeFileSync(
        join(secret, 'auth.conf'),
        auth.replaceAll(`${mount.mountPath}/`, `${secret}/`).replaceAll('/data/', `${data}/`),
      );
      copyFileSync(join(authDir ?? '', 'operator.jwt'), join(secret, 'operator.jwt'));
      writeFileSync(
        join(conf, 'nats.conf'),
        [
          'port: 4222',
          `jetstream { store_dir: ${JSON.stringify(data)} }`,
          `max_control_line: ${v.config.merge.max_control_line}`,
          `max_payload: ${v.config.merge.max_payload}`,
          `include ${JSON.stringify(include)}`,
        ].join('\n'),
      );
      natsValid(join(conf, 'nats.conf'));
    });
  });

  describe('Compose', () => {
    it('is valid against the Compose specification and dclint finds nothing', async () => {
      const { DCLinter } = (await import(requireRoot.resolve('dclint'))) as {
        DCLinter: new (
          c: unknown,
        ) => {
          lintFiles(p: string[], r: boolean): { messages: { rule: string; message: string }[] }[];
        };
      };
      const lint = (path: string) =>
        new DCLinter({
          // Every rule at its default, but ports quoted as Biome formats YAML: "…".
          rules: { 'require-quotes-in-ports': [1, { quoteType: 'double' }] },
          quiet: true,
          debug: false,
          exclude: [],
        })
          .lintFiles([path], false)[0]
          ?.messages.map((m) => `${m.rule}: ${m.message}`);
      expect(lint(join(deploy, 'compose/compose.yaml'))).toEqual([]);
      // The same check catches a key the specification does not have.
      const broken = dir.join('compose-broken.yaml');
      writeFileSync(
        broken,
        read('compose/compose.yaml').replace('    image: nats:', '    imag: nats:'),
      );
      expect(lint(broken)?.join('\n')).toMatch(/invalid-schema/);
    });

    it('runs nats and the four services, each with its own credentials as a Compose secret', () => {
      const c = parseYaml(read('compose/compose.yaml')) as {
        services: Record<
          string,
          {
            image: string;
            command?: string[];
            environment?: Record<string, string>;
            secrets?: { source: string }[];
            volumes?: string[];
          }
        >;
        secrets: Record<string, { file: string }>;
        volumes: Record<string, unknown>;
      };
      expect(Object.keys(c.services).sort()).toEqual([
        'chef',
        'fswatcher',
        'majordomo',
        'nats',
        'runner',
      ]);
      for (const svc of ['majordomo', 'chef', 'runner', 'fswatcher']) {
        const s = c.services[svc];
        expect(s?.command, svc).toEqual([svc]);
        const secret = `${svc}_creds`;
        expect(
          s?.secrets?.map((x) => x.source),
          svc,
        ).toEqual([secret]);
        expect(c.secrets[secret]?.file, svc).toMatch(/^\.\/secrets\//);
        expect(s?.environment?.NATS_CREDS, svc).toBe(`/run/secrets/${secret}`);
        expect(s?.environment?.NATS_URL, svc).toBe('nats://nats:4222');
        expect(s?.environment?.CP_PROJECT, svc).toBe('demo');
        expect(s?.volumes, svc).toContain('state:/var/lib/computepods');
        if (svc !== 'majordomo')
          expect(s?.volumes, svc).toContain('workspace:/srv/computepods/workspace');
      }
      expect(Object.keys(c.volumes).sort()).toEqual(['nats', 'state', 'workspace']);
      // Published on loopback only.
      expect(JSON.stringify(c)).not.toMatch(/"(0\.0\.0\.0:)?\d+:\d+"/);
    });

    it('the four services start with the image and their Compose environment, and build', async () => {
      await using stack = await Stack.start('demo');
      const c = parseYaml(read('compose/compose.yaml')) as {
        services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
      };
      const launches = Object.entries(c.services)
        .filter(([name]) => name !== 'nats')
        .map(
          ([name, s]): Launch => ({
            svc: name as Svc,
            argv: [entrypoint(), ...(s.command ?? [])],
            env: { ...imageEnv(), ...s.environment },
          }),
        );
      await runDeployment(stack, launches, {
        '/srv/computepods/workspace': stack.workspace,
        '/var/lib/computepods': stack.dir.join('state-compose'),
      });
    }, 240_000);

    it("nats.conf with cpctrl's auth.conf, made as its comment says, is valid for nats-server", async () => {
      const text = read('compose/nats.conf');
      expect(text).toMatch(/^include "auth.conf"/m);
      const etc = dir.join('compose/etc/nats');
      mkdirSync(etc, { recursive: true });
      const data = dir.join('compose/data');
      const auth = await authConf('/data/resolver', '/etc/nats/operator.jwt');
      writeFileSync(
        join(etc, 'auth.conf'),
        auth.replaceAll('/etc/nats/', `${etc}/`).replaceAll('/data/', `${data}/`),
      );
      copyFileSync(join(authDir ?? '', 'operator.jwt'), join(etc, 'operator.jwt'));
      writeFileSync(join(etc, 'nats.conf'), text.replaceAll('/data/', `${data}/`));
      natsValid(join(etc, 'nats.conf'));
    });
  });

  describe('Containerfile', () => {
    const lines = read('Containerfile')
      .replace(/\\\n/g, ' ')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));

    it('builds on Debian with the Node and pnpm the repository asks for, from the lockfile', () => {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
      const from = lines.filter((l) => l.startsWith('FROM '));
      expect(from).toHaveLength(1);
      const m = /^FROM node:(\d+)\.(\d+)-(bookworm|trixie)-slim$/.exec(from[0] ?? '');
      expect(m, from[0]).not.toBeNull();
      const [major, minor] = [Number(m?.[1]), Number(m?.[2])];
      expect(major > 20 || (major === 20 && minor >= 19), 'engines: node >= 20.19').toBe(true);
      const pnpm = String(pkg.packageManager).split('@')[1];
      expect(lines.some((l) => l.includes(`npm install -g pnpm@${pnpm} `))).toBe(true);
      expect(lines.some((l) => /RUN pnpm install --frozen-lockfile/.test(l))).toBe(true);
      expect(lines.some((l) => /RUN pnpm -s build/.test(l))).toBe(true);
      expect(lines.some((l) => /^USER \d+/.test(l))).toBe(true);
    });

    it('copies what exists, every workspace package manifest, and ends in the entrypoint', () => {
      const copied = lines
        .filter((l) => l.startsWith('COPY '))
        .flatMap((l) => l.split(/\s+/).slice(1, -1));
      for (const src of copied) expect(existsSync(join(root, src)), src).toBe(true);
      // pnpm install --frozen-lockfile needs every workspace package's manifest.
      const workspace = parseYaml(readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8'))
        .packages as string[];
      for (const p of workspace) {
        const base = p.replace(/\/\*$/, '');
        expect(
          copied.some((s) => s === base || s === `${base}/package.json`),
          `${p} is not copied before pnpm install`,
        ).toBe(true);
      }
      const entry = lines.find((l) => l.startsWith('ENTRYPOINT '));
      const argv = JSON.parse(entry?.slice('ENTRYPOINT '.length) ?? '[]') as string[];
      const script = argv.at(-1) ?? '';
      expect(script).toBe('/opt/computepods/deploy/bin/computepods-service');
      accessSync(join(root, script.replace('/opt/computepods/', '')), constants.X_OK);
      expect(copied).toContain('deploy/bin');
      // The ignore file keeps installed modules and secrets out of the build context.
      const ignore = read('Containerfile.dockerignore');
      expect(ignore).toMatch(/^\*\*\/node_modules$/m);
      expect(ignore).toMatch(/^\*\*\/\*\.creds$/m);
    });

    it('its steps, run here without a container engine, install, build and start the programs', () => {
      // The build context as the ignore file leaves it, copied as the COPY lines say, then the
      // RUN pnpm lines (the packages from the local store: --offline), then the entrypoint.
      // What this cannot check: the base image itself, apt-get, npm install -g.
      const excludes = read('Containerfile.dockerignore')
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('#'))
        .map((p) => `--exclude=${p.replace(/^\*\*\//, '')}`);
      const image = dir.join('image/opt/computepods');
      mkdirSync(image, { recursive: true });
      const copied = lines
        .filter((l) => l.startsWith('COPY '))
        .flatMap((l) => l.split(/\s+/).slice(1, -1));
      const tar = spawnSync(
        'sh',
        ['-c', 'tar -c "$@" | tar -x -C "$0"', image, ...excludes, '-C', root, ...copied],
        { encoding: 'utf8' },
      );
      expect(tar.status, tar.stderr).toBe(0);
      expect(existsSync(join(image, 'apps/cpctrl/dist')), 'dist/ left out').toBe(false);
      for (const run of lines.filter((l) => /^RUN pnpm /.test(l))) {
        const argv = run.slice('RUN pnpm '.length).split(/\s+/);
        if (argv[0] === 'install') argv.push('--offline');
        const r = spawnSync('pnpm', argv, {
          cwd: image,
          encoding: 'utf8',
          env: { ...process.env, CI: '1' },
        });
        expect(r.status, `${run}: ${r.stdout}${r.stderr}`).toBe(0);
      }
      // Then its node steps: each program's code cache written at build, beside its bundle.
      for (const run of lines.filter((l) => /^RUN node /.test(l))) {
        const r = spawnSync(process.execPath, run.slice('RUN node '.length).split(/\s+/), {
          cwd: image,
          encoding: 'utf8',
        });
        expect(r.status, `${run}: ${r.stdout}${r.stderr}`).toBe(0);
      }
      for (const program of [
        'apps/cpctrl',
        'apps/inotify2nats',
        'services/majordomo',
        'services/runner',
      ])
        expect(
          existsSync(join(image, program, 'dist', `${basename(program)}.cjs.v8cache`)),
          program,
        ).toBe(true);
      const entry = join(image, 'deploy/bin/computepods-service');
      const help = spawnSync(entry, ['cpctrl', '--help'], { encoding: 'utf8' });
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^Usage: cpctrl/);
      for (const svc of ['majordomo', 'chef', 'runner', 'fswatcher']) {
        const r = spawnSync(entry, [svc], {
          encoding: 'utf8',
          cwd: dir.path,
          env: { ...process.env, CP_PROJECT: 'Not A Project', CP_LOG_FORMAT: 'json' },
        });
        expect(r.stderr, svc).toMatch(/CP_PROJECT must be 1-63 characters/);
        const version = spawnSync(entry, [svc, '--version'], { encoding: 'utf8', cwd: dir.path });
        expect(version.stdout, `${svc} --version: ${version.stderr}`).toMatch(
          new RegExp(`^${svc} \\d`),
        );
      }
      expect(existsSync(join(image, 'packages/majordomo-ui/dist/index.html'))).toBe(true);
    }, 300_000);
  });
});

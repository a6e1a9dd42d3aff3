import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * What each workspace package may depend on at run time (its `dependencies`; test-only
 * `devDependencies` such as the test kit are free). Each package's README says the same in
 * its "Boundaries" line. Libraries under packages/ never depend on a service or on an app (apps/:
 * the CLIs); the foundation packages depend on no workspace package but protocol (zod only; it
 * holds the one error base, CpError, and the one retry rule, isRetryable); services never depend
 * on one another.
 */
const ALLOWED: Record<string, readonly string[]> = {
  protocol: [],
  depgraph: ['protocol'],
  fswatch: ['protocol'],
  transport: ['protocol'],
  testkit: ['protocol'],
  'majordomo-ui': [],
  bus: ['protocol'],
  projects: ['protocol', 'bus'],
  auth: ['protocol', 'bus', 'projects'],
  executors: ['protocol', 'transport'],
  cpctrl: ['protocol', 'bus', 'projects', 'auth'],
  logstream: ['protocol', 'bus', 'fswatch'],
  inotify2nats: ['protocol', 'bus', 'fswatch', 'logstream', 'transport'],
  majordomo: ['protocol', 'bus', 'depgraph', 'majordomo-ui'],
  chef: ['protocol', 'bus', 'depgraph', 'fswatch', 'transport'],
  runner: ['protocol', 'bus', 'executors', 'transport'],
  fswatcher: ['protocol', 'bus', 'fswatch', 'logstream'],
};

const SERVICES = ['majordomo', 'chef', 'runner', 'fswatcher'];

function workspacePackages(): Array<{ dir: string; name: string; deps: string[] }> {
  return ['packages', 'apps', 'services'].flatMap((group) =>
    readdirSync(join(ROOT, group)).map((d) => {
      const pkg = JSON.parse(readFileSync(join(ROOT, group, d, 'package.json'), 'utf8')) as {
        name: string;
        dependencies?: Record<string, string>;
      };
      const deps = Object.keys(pkg.dependencies ?? {})
        .filter((n) => n.startsWith('@computepods/'))
        .map((n) => n.slice('@computepods/'.length));
      return { dir: `${group}/${d}`, name: pkg.name.slice('@computepods/'.length), deps };
    }),
  );
}

describe('package boundaries', () => {
  const pkgs = workspacePackages();

  it('every workspace package depends only on what its boundaries allow', () => {
    for (const p of pkgs) {
      const allowed = ALLOWED[p.name];
      expect(allowed, `${p.dir}: add its boundaries to ALLOWED and its README`).toBeDefined();
      const extra = p.deps.filter((d) => !allowed!.includes(d));
      expect(extra, `${p.dir} depends on ${extra.join(', ')}, which its boundaries forbid`).toEqual(
        [],
      );
    }
  });

  it('no library depends on a service, and no service on another', () => {
    for (const p of pkgs)
      expect(
        p.deps.filter((d) => SERVICES.includes(d)),
        p.dir,
      ).toEqual([]);
  });

  it('apps (the programs people run) are built on the libraries: nothing depends on one', () => {
    const apps = pkgs.filter((p) => p.dir.startsWith('apps/')).map((p) => p.name);
    expect(apps.sort()).toEqual(['cpctrl', 'inotify2nats']);
    for (const p of pkgs)
      expect(
        p.deps.filter((d) => apps.includes(d)),
        p.dir,
      ).toEqual([]);
  });

  it("each package's README states its boundaries", () => {
    for (const p of pkgs) {
      const readme = readFileSync(join(ROOT, p.dir, 'README.md'), 'utf8');
      expect(readme, `${p.dir}/README.md`).toMatch(/^\*\*Boundaries\.\*\* /m);
    }
  });
});

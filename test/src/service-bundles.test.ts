import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, SERVICES } from '../../scripts/bundle.mjs';
import { startBundled } from './bundled-service.js';
import { Stack } from './stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The four services run from their one-file bundles (scripts/bundle.mjs, what `up`, the systemd
 * units and the image start), built into the stack's temp dir: a saved file is built end to end
 * over a real nats-server, and files the sources find beside themselves (the runner's
 * spawner.py, MajorDomo's web page, the chef's built-in definitions) are still found.
 */
describe('services from their bundles', () => {
  let stack: Stack;
  const bundles = new Map<string, string>();

  beforeAll(async () => {
    stack = await Stack.start('bundled');
    for (const s of SERVICES) {
      const name = s.outfile.split('/').pop() ?? '';
      const outfile = stack.dir.join(name);
      await bundle({ ...s, outfile });
      bundles.set(name.replace(/\.mjs$/, ''), outfile);
    }
    const at = (kind: string) => bundles.get(kind) ?? '';
    await startBundled(stack, 'majordomo', at('majordomo'), {
      grant: { role: 'majordomo' },
      ready: /"msg":"majordomo ready"/,
    });
    await Promise.all([
      startBundled(stack, 'chef', at('chef'), {
        grant: { role: 'chef', scope: 'text' },
        extra: { CP_CHEF: 'text', CP_CHEF_DEFINITION: stack.writeUpperChef() },
        ready: /"msg":"rules declared"/,
      }),
      startBundled(stack, 'runner', at('runner'), {
        grant: { role: 'runner', scope: 'local' },
        ready: /"msg":"runner ready"/,
      }),
      startBundled(stack, 'fswatcher', at('fswatcher'), {
        grant: { role: 'fswatcher', scope: 'pod-test' },
        ready: /"msg":"watching workspace"/,
      }),
    ]);
  }, 180_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('builds out/a.upper from a saved src/a.txt (fswatcher, MajorDomo, chef, runner)', async () => {
    stack.write('src/a.txt', 'bundled\n');
    await stack.until('out/a.upper');
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('BUNDLED\n');
  });

  it('serves the web page from packages/majordomo-ui/dist, not from beside the bundle', async () => {
    const res = await fetch(`${await stack.httpUrl()}/`);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toBe(readFileSync(join(root, 'packages/majordomo-ui/dist/index.html'), 'utf8'));
  });

  it('starts a chef on a built-in definition from services/chef/chefs (CP_CHEF_DEFINITION=generic)', async () => {
    const chef = await startBundled(stack, 'chef', bundles.get('chef') ?? '', {
      grant: { role: 'chef', scope: 'gen' },
      extra: { CP_CHEF: 'gen', CP_CHEF_DEFINITION: 'generic' },
      name: 'chef-gen',
      ready: /"msg":"rules declared"|"level":[56]0/,
    });
    expect(chef.output).toMatch(/"msg":"rules declared"/);
  });

  it('stops cleanly on SIGTERM, as systemd and up stop it (exit 0, drained)', async () => {
    const md = stack.procs.get('majordomo');
    expect(md?.running).toBe(true);
    const code = await md?.stop(20_000);
    expect(md?.output).toMatch(/"msg":"stopped cleanly"/);
    expect(code).toBe(0);
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Every error class of the project extends protocol's CpError (a code from ERROR_CODES,
 * `retryable`, `cause`, `name` set once), so that isRetryable decides every retry by class and
 * code. These are the only classes on plain Error, each with its reason.
 */
const PLAIN_ERROR_ALLOWED: Record<string, string> = {
  'packages/protocol/src/errors.ts CpError': 'the base itself',
  'packages/testkit/src/kube-api.ts ApiError':
    "the fake Kubernetes API's Status (an HTTP status and a Kubernetes reason), not ours",
  'packages/majordomo-ui/src/web/api.ts ApiError':
    'the browser app, which depends on no workspace package (it reads the code MajorDomo sent)',
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

describe('error classes', () => {
  it('every error class extends CpError, but the few named here', () => {
    const plain: string[] = [];
    for (const group of ['packages', 'apps', 'services'])
      for (const pkg of readdirSync(join(ROOT, group))) {
        const src = join(ROOT, group, pkg, 'src');
        let files: string[];
        try {
          files = sources(src);
        } catch {
          continue;
        }
        for (const file of files) {
          const text = readFileSync(file, 'utf8');
          for (const m of text.matchAll(/class (\w+)(?:<[^{]*>)? extends Error\b/g))
            plain.push(`${file.slice(ROOT.length + 1)} ${m[1]}`);
        }
      }
    expect(plain.filter((p) => !(p in PLAIN_ERROR_ALLOWED))).toEqual([]);
    // The list holds no stale entry: each named class is still there.
    expect(plain.sort()).toEqual(Object.keys(PLAIN_ERROR_ALLOWED).sort());
  });
});

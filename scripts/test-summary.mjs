// Prints the closing line 'tests: N passed, N failed, N skipped' from vitest's JSON report, and
// exits non-zero when the run is not green:
// - failed counts failed tests, and each test file that failed outside its tests (a beforeAll or
//   afterAll that threw, a file that failed to import): vitest marks those files failed and their
//   tests skipped, so the count of failed tests alone would say 0;
// - a skipped test fails the run unless the allowlist (test/skip-allowlist.json) names it, with
//   a reason.
// Usage: node scripts/test-summary.mjs [report.json] [allowlist.json] [vitest exit code]
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

const [reportFile = '.vitest-results.json', allowFile = 'test/skip-allowlist.json', exitArg] =
  process.argv.slice(2);
const root = process.cwd();
const rel = (p) => relative(root, resolve(root, p));

let report;
try {
  report = JSON.parse(readFileSync(reportFile, 'utf8'));
} catch (err) {
  console.log(`tests: 0 passed, 1 failed, 0 skipped (no report at ${reportFile}: ${err.message})`);
  process.exit(1);
}

/** `file › full test name` → reason, from the allowlist; problems with the list itself. */
function readAllowlist() {
  const problems = [];
  let list;
  try {
    list = JSON.parse(readFileSync(allowFile, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return { allowed: new Map(), problems };
    return { allowed: new Map(), problems: [`${allowFile}: ${err.message}`] };
  }
  const allowed = new Map();
  const entries = Array.isArray(list?.skips) ? list.skips : undefined;
  if (!entries) problems.push(`${allowFile}: expected {"skips": [{"file", "test", "reason"}, …]}`);
  for (const [i, e] of (entries ?? []).entries()) {
    const ok =
      typeof e?.file === 'string' &&
      typeof e?.test === 'string' &&
      typeof e?.reason === 'string' &&
      e.reason.trim().length > 0;
    if (ok) allowed.set(`${rel(e.file)} › ${e.test}`, e.reason.trim());
    else problems.push(`${allowFile}: skips[${i}] needs "file", "test" (full name) and a "reason"`);
  }
  return { allowed, problems };
}

const { allowed, problems } = readAllowlist();
const SKIPPED = new Set(['skipped', 'pending', 'todo']);
let passed = 0;
let failedTests = 0;
let skipped = 0;
const brokenFiles = [];
const unlisted = [];
const used = new Set();
for (const file of report.testResults ?? []) {
  const name = rel(file.name);
  const tests = file.assertionResults ?? [];
  const failedHere = tests.filter((t) => t.status === 'failed').length;
  // Failed with no failed test: its set-up or tear-down threw, or it did not import. Its skipped
  // tests are that failure's, not skips to allow.
  const broken = file.status === 'failed' && failedHere === 0;
  for (const t of tests) {
    if (t.status === 'passed') passed++;
    else if (SKIPPED.has(t.status)) {
      skipped++;
      const key = `${name} › ${t.fullName}`;
      if (allowed.has(key)) used.add(key);
      else if (!broken) unlisted.push(key);
    }
  }
  failedTests += failedHere;
  if (broken)
    brokenFiles.push(
      `${name}: ${file.message || 'a beforeAll/afterAll hook failed (its error is above)'}` +
        (tests.length ? `; ${tests.length} of its tests did not pass` : '; no test ran'),
    );
}

let failed = failedTests + brokenFiles.length;
const notes = [];
for (const f of brokenFiles) notes.push(`failed outside any test: ${f}`);
// Belt and braces: vitest's own verdict, should a failure escape the per-file view.
if (failed === 0 && (report.numFailedTestSuites > 0 || report.success === false)) {
  failed = 1;
  notes.push(
    `vitest reports ${report.numFailedTestSuites ?? '?'} failed suites (success: ${report.success})`,
  );
}
const vitestExit = exitArg === undefined ? 0 : Number(exitArg);
if (failed === 0 && vitestExit !== 0) {
  failed = 1;
  notes.push(`vitest exited ${vitestExit} with every test passing: an error outside the tests`);
}
for (const key of unlisted)
  notes.push(`skipped but not in ${allowFile} (add it with a reason, or run it): ${key}`);
for (const p of problems) notes.push(p);
for (const key of allowed.keys())
  if (!used.has(key)) console.log(`note: ${allowFile} lists a test that was not skipped: ${key}`);
for (const n of notes) console.log(n);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
const green = failed === 0 && passed > 0 && unlisted.length === 0 && problems.length === 0;
process.exit(green ? 0 : 1);

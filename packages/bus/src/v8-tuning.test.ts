import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const index = fileURLToPath(new URL('./index.ts', import.meta.url));

// A service started by startService that runs one function hot and says after how many calls V8
// first marked it for optimisation (V8's own status bits: optimised 1<<4, marked 1<<8 and 1<<9,
// compiling concurrently 1<<10). Counted in calls, not time: the same count on a busy machine.
const service = `
import { createLogger, startService } from ${JSON.stringify(index)};
function hot(a) {
  let s = 0;
  for (let i = 0; i < 20; i++) { s += (a * i) % 7; const o = { x: s, y: i }; s += o.x & 3; s ^= i << 2; }
  return s;
}
startService(createLogger('v8-tuning-test'), async () => {
  let n = 0;
  for (; n < 100000; n++) { hot(n); if (%GetOptimizationStatus(hot) & 0x710) break; }
  process.stdout.write(JSON.stringify({ markedAfter: n }) + '\\n');
  process.exit(0);
});
`;

function run(budget: string | undefined) {
  const env: NodeJS.ProcessEnv = { ...process.env, CP_LOG_FORMAT: 'json' };
  delete env.CP_V8_INTERRUPT_BUDGET;
  if (budget !== undefined) env.CP_V8_INTERRUPT_BUDGET = budget;
  const r = spawnSync(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', service],
    { env, encoding: 'utf8', timeout: 60_000 },
  );
  const out = r.stdout.trim();
  return {
    status: r.status,
    stderr: r.stderr,
    markedAfter: out ? JSON.parse(out).markedAfter : -1,
  };
}

describe('startService tunes V8 first (CP_V8_INTERRUPT_BUDGET, a real service process)', () => {
  it('by default leaves V8 alone (as 0 does); a budget of 16x V8 own marks a hot function far later', () => {
    const own = run('0');
    const byDefault = run(undefined);
    const raised = run(String(16 * 67_584));
    for (const r of [own, byDefault, raised]) expect(r.status, r.stderr).toBe(0);
    expect(own.markedAfter).toBeGreaterThan(0);
    // Counted in calls, the same in every run of the same code.
    expect(byDefault.markedAfter).toBe(own.markedAfter);
    expect(raised.markedAfter).toBeGreaterThan(8 * own.markedAfter);
  });

  it('refuses a bad value at start, naming the variable, and exits 1', () => {
    const r = run('lots');
    expect(r.status).toBe(1);
    expect(r.markedAfter).toBe(-1);
    expect(r.stderr).toContain('cannot start: CP_V8_INTERRUPT_BUDGET must be a whole number');
  });
});

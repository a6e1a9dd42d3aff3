import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const index = fileURLToPath(new URL('./index.ts', import.meta.url));

// A service started by startService that runs fresh hot functions and says after how many calls
// V8 first marked each for optimisation (V8's own status bits: optimised 1<<4, marked 1<<8 and
// 1<<9, compiling concurrently 1<<10): one at the service's budget, one inside atOwnTierUp, one
// after it. Counted in calls, not time: the same counts on a busy machine.
const service = `
import { atOwnTierUp, createLogger, startService } from ${JSON.stringify(index)};
// A new source each time: closures of one literal, or Functions of one source (V8's compilation
// cache), would share their feedback and optimised code.
const body = 'let s = 0; for (let i = 0; i < 20; i++) { s += (a * i) % 7; const o = { x: s, y: i }; s += o.x & 3; s ^= i << 2; } return s;';
let made = 0;
const fresh = () => new Function('a', body + ' // ' + made++);
const marked = (hot) => {
  let n = 0;
  for (; n < 100000; n++) { hot(n); if (%GetOptimizationStatus(hot) & 0x710) break; }
  return n;
};
startService(createLogger('v8-tuning-test'), async () => {
  const markedAfter = marked(fresh());
  const during = await atOwnTierUp(async () => marked(fresh()));
  const after = marked(fresh());
  process.stdout.write(JSON.stringify({ markedAfter, during, after }) + '\\n');
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
    ...((out ? JSON.parse(out) : { markedAfter: -1 }) as {
      markedAfter: number;
      during?: number;
      after?: number;
    }),
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

  it("atOwnTierUp runs its work at V8's own budget, then the service's raised one again; at the default it changes nothing", () => {
    const own = run('0');
    const raised = run(String(16 * 67_584));
    for (const r of [own, raised]) expect(r.status, r.stderr).toBe(0);
    expect(own.during).toBe(own.markedAfter);
    expect(own.after).toBe(own.markedAfter);
    expect(raised.during).toBeLessThan(2 * own.markedAfter);
    expect(raised.after).toBeGreaterThan(8 * own.markedAfter);
  });

  it('refuses a bad value at start, naming the variable, and exits 1', () => {
    const r = run('lots');
    expect(r.status).toBe(1);
    expect(r.markedAfter).toBe(-1);
    expect(r.stderr).toContain('cannot start: CP_V8_INTERRUPT_BUDGET must be a whole number');
  });
});

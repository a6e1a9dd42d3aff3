import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bus = fileURLToPath(new URL('../../../packages/bus/src/index.ts', import.meta.url));
const tierUp = fileURLToPath(new URL('./restore-tier-up.ts', import.meta.url));

// A service (startService: CP_V8_INTERRUPT_BUDGET applied) that runs a fresh hot function inside
// restoreUnderOwnTierUp and another after it, saying after how many calls V8 first marked each
// for optimisation (V8's status bits, as packages/bus v8-tuning.test counts them): in calls, not
// time, so the same on a busy machine.
const service = `
import { createLogger, startService } from ${JSON.stringify(bus)};
import { restoreUnderOwnTierUp } from ${JSON.stringify(tierUp)};
// Two literals: closures of one literal would share its feedback and optimised code.
const body = 'let s = 0; for (let i = 0; i < 20; i++) { s += (a * i) % 7; const o = { x: s, y: i }; s += o.x & 3; s ^= i << 2; } return s;';
const fresh = () => new Function('a', body);
const marked = (hot) => {
  let n = 0;
  for (; n < 100000; n++) { hot(n); if (%GetOptimizationStatus(hot) & 0x710) break; }
  return n;
};
startService(createLogger('tier-up-test'), async () => {
  const during = await restoreUnderOwnTierUp(async () => marked(fresh()));
  const after = marked(fresh());
  process.stdout.write(JSON.stringify({ during, after }) + '\\n');
  process.exit(0);
});
`;

describe('restoreUnderOwnTierUp (a real service process)', () => {
  it("optimises a restore's hot code at V8's own budget, then goes back to the service's raised one", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CP_LOG_FORMAT: 'json' };
    env.CP_V8_INTERRUPT_BUDGET = String(16 * 67_584); // a service budget raised 16x
    const r = spawnSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', service],
      { env, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const { during, after } = JSON.parse(r.stdout.trim()) as { during: number; after: number };
    expect(during).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(8 * during);
  });
});

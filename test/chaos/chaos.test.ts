import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChaosRun, type EpisodeKind } from './chaos.js';

/**
 * Chaos over real processes: an edit storm through the fswatcher while services and nats-server
 * are killed -9, two services down at once and nats-server down longer than the chef timeout;
 * after each storm everything is restarted, left to settle, and every artefact must equal a
 * from-scratch build of the final sources byte for byte. Over the whole run no acknowledged
 * completion may be lost and none may happen twice (see ChaosRun.finish for what each means).
 * CP_CHAOS_SEED replays a run; `pnpm bench chaos` runs it for minutes.
 */
const seed = Number(process.env.CP_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe(`chaos: edit storm under kill -9 (seed ${seed}, CP_CHAOS_SEED=${seed} replays it)`, () => {
  let run: ChaosRun;

  beforeAll(async () => {
    console.log(`chaos seed ${seed}`);
    run = await ChaosRun.start({ seed, log: (l) => console.log(`[chaos ${seed}] ${l}`) });
  }, 180_000);
  afterAll(async () => {
    await run?.[Symbol.asyncDispose]();
  });

  const kinds: EpisodeKind[] = ['pair', 'nats', 'mixed'];
  for (const kind of kinds)
    it(`settles byte-exact after a ${kind} storm`, async () => {
      const ep = await run.episode(kind);
      expect(ep.mismatches, `seed ${seed}`).toEqual([]);
    }, 240_000);

  it('lost no acknowledged completion and ran none twice', async () => {
    const report = await run.finish();
    console.log(
      `[chaos ${seed}] edits ${report.edits}, kills ${JSON.stringify(report.kills)}, NATS outages ${report.natsOutages}, executions ${report.executions}, succeeded results ${report.succeededResults}`,
    );
    expect(report.episodes).toHaveLength(kinds.length);
    expect(report.lost, `seed ${seed}`).toEqual([]);
    expect(report.duplicated, `seed ${seed}`).toEqual([]);
    for (const [name, p] of run.stack.procs) expect(p.running, name).toBe(true);
  });
});

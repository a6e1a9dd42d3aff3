import { describe, expect, it } from 'vitest';
import { runnerConfig } from './config.js';

describe('runnerConfig: how long SLURM job folders are kept', () => {
  it('keeps a finished job folder 10 minutes and a failed one 7 days unless told otherwise', () => {
    expect(runnerConfig({}).jobKeep).toEqual({ okMs: 600_000, failedMs: 604_800_000 });
    expect(runnerConfig({ CP_JOB_KEEP_S: '0', CP_JOB_KEEP_FAILED_S: '3600' }).jobKeep).toEqual({
      okMs: 0,
      failedMs: 3_600_000,
    });
  });

  it('names the variable when its value is not a whole number of seconds', () => {
    for (const bad of ['-1', '1.5', 'soon', '1e12'])
      expect(() => runnerConfig({ CP_JOB_KEEP_FAILED_S: bad })).toThrow(
        /CP_JOB_KEEP_FAILED_S must be a whole number of seconds/,
      );
  });
});

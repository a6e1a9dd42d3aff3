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

describe('runnerConfig: the Kubernetes stage server (CP_K8S_STAGE_*)', () => {
  it('is off unless CP_K8S_STAGE_LISTEN is set; then host, port, URL and TLS files', () => {
    expect(runnerConfig({}).kubernetesStaging).toBeUndefined();
    expect(
      runnerConfig({
        CP_K8S_STAGE_LISTEN: '[::]:8443',
        CP_K8S_STAGE_URL: 'https://runner.builds.svc:8443',
        CP_K8S_STAGE_TLS_CERT: '/etc/cp/tls.crt',
        CP_K8S_STAGE_TLS_KEY: '/etc/cp/tls.key',
      }).kubernetesStaging,
    ).toEqual({
      host: '::',
      port: 8443,
      url: 'https://runner.builds.svc:8443',
      certFile: '/etc/cp/tls.crt',
      keyFile: '/etc/cp/tls.key',
      caFile: undefined,
    });
  });

  it('names each variable that is wrong or missing', () => {
    const err = (() => {
      try {
        runnerConfig({ CP_K8S_STAGE_LISTEN: 'runner', CP_K8S_STAGE_URL: 'http://x' });
      } catch (e) {
        return e as { code?: string; variables?: string[]; message: string };
      }
    })();
    expect(err?.code).toBe('CP_INVALID_ENV');
    expect(err?.variables).toEqual([
      'CP_K8S_STAGE_LISTEN',
      'CP_K8S_STAGE_TLS_CERT',
      'CP_K8S_STAGE_TLS_KEY',
      'CP_K8S_STAGE_URL',
    ]);
    expect(err?.message).toMatch(/CP_K8S_STAGE_LISTEN must be host:port/);
    expect(err?.message).toMatch(/CP_K8S_STAGE_TLS_CERT is required with CP_K8S_STAGE_LISTEN/);
  });
});

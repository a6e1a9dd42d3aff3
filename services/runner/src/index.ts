/**
 * The runner service: executes tasks from `cp.<project>.tasks.<resource>` on the resource's
 * backend (local, slurm_sudo, slurm_ssh), recording every transition in KV before acting.
 *
 *   CP_PROJECT=demo CP_RESOURCE=local NATS_URL=nats://127.0.0.1:4222 tsx services/runner/src/main.ts
 *   CP_RESOURCE=hpc CP_PROFILE=alice tsx services/runner/src/main.ts   # resource + profile from KV
 */
export { type RunnerConfig, runnerConfig } from './config.js';
export { KvRecords } from './kv-records.js';
export { loadProfile, loadResource } from './resources.js';
export { type RunningRunner, startRunner } from './runner.js';

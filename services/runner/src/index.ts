/**
 * The runner service: executes tasks from `cp.<project>.tasks.<resource>`.
 *
 *   CP_PROJECT=demo CP_RESOURCE=local NATS_URL=nats://127.0.0.1:4222 tsx services/runner/src/main.ts
 */
export { type RunnerConfig, runnerConfig } from './config.js';
export { startRunner } from './runner.js';

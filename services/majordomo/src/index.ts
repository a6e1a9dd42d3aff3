/**
 * MajorDomo: plans rebuilds with the DependencyManager, tracks artefacts, dispatches builds.
 *
 *   CP_PROJECT=demo NATS_URL=nats://127.0.0.1:4222 tsx services/majordomo/src/main.ts
 */
export { serveApi } from './api.js';
export { ArtefactManager } from './artefacts.js';
export { buildId } from './build-id.js';
export { type MajorDomoConfig, majorDomoConfig } from './config.js';
export { MajorDomo } from './majordomo.js';
export { type OwnedRule, RuleRegistry } from './rules.js';

import { z } from 'zod';
import { ServiceName } from './names.js';
import { RelativePath } from './paths.js';

/**
 * MajorDomo → every live chef (ComputePods' RulesManager): "how to build" `goal`, given the
 * artefacts MajorDomo has. Asked for a goal no declared rule produces.
 */
export const HowToBuild = z.object({
  goal: RelativePath,
  /** Artefacts that exist now (sources and products), for the chef to pick a rule it can run. */
  have: z.array(RelativePath).max(10_000).default([]),
});
export type HowToBuild = z.infer<typeof HowToBuild>;

/** A chef's "can build from" answer. `canBuild` false: `from` names what it would need. */
export const CanBuildFrom = z.object({
  goal: RelativePath,
  chef: ServiceName,
  pod: z.string().min(1).max(200),
  canBuild: z.boolean(),
  /** Required inputs of the build that makes the goal. */
  from: z.array(RelativePath).default([]),
  /** Inputs used only when they exist. */
  optionalFrom: z.array(RelativePath).default([]),
  /** Files the build writes besides its outputs: products, never sources. */
  auxiliaries: z.array(RelativePath).default([]),
  /** Everything the build outputs, the goal first. */
  outputs: z.array(RelativePath).default([]),
  /** The chef's rule and the stem that fills it (what a build request for it carries). */
  rule: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,100}$/)
    .optional(),
  stem: z.string().max(500).default(''),
});
export type CanBuildFrom = z.infer<typeof CanBuildFrom>;

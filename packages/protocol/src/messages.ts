import type { z } from 'zod';
import { ArtefactStates } from './artefacts.js';
import { BuildCancel, BuildRequested, BuildResult } from './builds.js';
import { DeadLetter } from './dead-letter.js';
import { FilesChanged } from './files.js';
import { CanBuildFrom, HowToBuild } from './how-to-build.js';
import { LogChunk, TaskLogChunk } from './logs.js';
import { RulesDeclared } from './rules.js';
import { TaskControl, TaskStateChanged, TaskSubmitted } from './tasks.js';

/** Every message type, by its `type` field, with the schema of its body. */
export const messageTypes = {
  'artefact.states': ArtefactStates,
  'build.cancel': BuildCancel,
  'build.requested': BuildRequested,
  'build.result': BuildResult,
  'dead.letter': DeadLetter,
  'files.changed': FilesChanged,
  'log.chunk': LogChunk,
  'rules.can_build_from': CanBuildFrom,
  'rules.declared': RulesDeclared,
  'rules.how_to_build': HowToBuild,
  'task.control': TaskControl,
  'task.log': TaskLogChunk,
  'task.state': TaskStateChanged,
  'task.submitted': TaskSubmitted,
} as const;

export type MessageType = keyof typeof messageTypes;
export type BodyOf<T extends MessageType> = z.infer<(typeof messageTypes)[T]>;
export type BodyInputOf<T extends MessageType> = z.input<(typeof messageTypes)[T]>;

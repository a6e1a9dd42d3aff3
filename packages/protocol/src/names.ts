import { z } from 'zod';
import { InvalidNameError } from './errors.js';

// A name becomes one NATS subject token, part of a stream or KV bucket name, and a directory
// name, so it must be safe in all three: no dots, wildcards, spaces or path separators.
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const NAME_RULE =
  'use 1-63 characters: lower-case letters, digits, "-" or "_", starting with a letter or digit';

export function checkName(field: string, value: string): string {
  if (!NAME_RE.test(value)) throw new InvalidNameError(field, value, NAME_RULE);
  return value;
}

export const ProjectName = z.string().regex(NAME_RE, NAME_RULE);
export const ServiceName = z.string().regex(NAME_RE, NAME_RULE);

/** Throws InvalidNameError unless the project name is a valid subject token. */
export function checkProject(project: string): string {
  return checkName('project name', project);
}

import { readFileSync } from 'node:fs';
import { issuesOf } from '@computepods/bus';
import { ArtefactType, CpError, Rule } from '@computepods/protocol';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** A chef definition file (YAML or JSON): what it builds and how. */
export const ChefDefinition = z
  .object({
    types: z.array(ArtefactType).default([]),
    rules: z.array(Rule).min(1, 'a chef needs at least one rule'),
  })
  .strict();
export type ChefDefinition = z.infer<typeof ChefDefinition>;

/** The definition file is unreadable or invalid; the message names the file and field. */
export class ChefDefinitionError extends CpError {
  constructor(file: string, detail: string, options?: ErrorOptions) {
    super('CP_CHEF_DEFINITION', `chef definition ${file}: ${detail}`, options);
  }
}

export function parseDefinition(text: string, file: string): ChefDefinition {
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ChefDefinitionError(
      file,
      `not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const parsed = ChefDefinition.safeParse(raw);
  if (!parsed.success) {
    const detail = issuesOf(parsed.error)
      .map((i) => `${i.path || '(top level)'}: ${i.message}`)
      .join('; ');
    throw new ChefDefinitionError(file, detail);
  }
  const ids = new Set<string>();
  for (const [i, rule] of parsed.data.rules.entries()) {
    if (ids.has(rule.id))
      throw new ChefDefinitionError(file, `rules: duplicate rule id ${JSON.stringify(rule.id)}`);
    ids.add(rule.id);
    // An auxiliary's placeholders are checked against the first input by protocol's Rule.
    for (const [j, pattern] of rule.auxiliaries.entries()) {
      if (rule.outputs.includes(pattern))
        throw new ChefDefinitionError(
          file,
          `rules.${i}.auxiliaries.${j}: ${JSON.stringify(pattern)} is an output already; list a file in one of the two`,
        );
    }
    for (const [j, pattern] of rule.cutoffIgnore.entries()) {
      try {
        new RegExp(pattern);
      } catch (err) {
        throw new ChefDefinitionError(
          file,
          `rules.${i}.cutoffIgnore.${j}: ${JSON.stringify(pattern)} is not a valid regular expression (${(err as Error).message})`,
        );
      }
    }
  }
  return parsed.data;
}

export function loadDefinition(file: string): ChefDefinition {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ChefDefinitionError(file, `cannot read it (${(err as Error).message})`, {
      cause: err,
    });
  }
  return parseDefinition(text, file);
}

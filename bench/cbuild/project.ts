// The generated C project of pnpm bench cbuild (deterministic): `sources` sources, each including
// two of `headers` shared headers, and a main.c calling every generated function; the C chef's
// builtin cc rule (read from services/chef/chefs/c.yaml) with a link rule listing this project's
// objects; and a Makefile whose rules run byte-identical commands.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const pad3 = (i: number) => String(i).padStart(3, '0');
export const pad2 = (i: number) => String(i).padStart(2, '0');

/** The two headers source i includes. */
export function headersOf(i: number, HEADERS: number): [number, number] {
  const a = i % HEADERS;
  let b = (i * 7 + 3) % HEADERS;
  if (b === a) b = (a + 1) % HEADERS;
  return [a, b];
}
function header(k: number): string {
  const K = pad2(k);
  return `/* h${K}.h: shared header ${k} */
#ifndef H${K}_H
#define H${K}_H
#define H${K}_SCALE ${k * 2 + 3}u
static inline unsigned h${K}_mix(unsigned x) {
  x ^= x >> ${(k % 7) + 3};
  x *= H${K}_SCALE;
  return x + ${k + 1}u;
}
#endif
`;
}
function source(i: number, HEADERS: number): string {
  const [a, b] = headersOf(i, HEADERS).map(pad2) as [string, string];
  let s = i * 2654435761;
  const tab = Array.from({ length: 16 }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return `${s >>> 8}u`;
  });
  return `/* s${pad3(i)}.c: generated source ${i} */
#include <stdlib.h>
#include <string.h>
#include "h${a}.h"
#include "h${b}.h"

static const unsigned tab[16] = {${tab.join(', ')}};

static unsigned step(unsigned x, unsigned i) {
  switch (i & 3u) {
  case 0: return h${a}_mix(x) + tab[i & 15u];
  case 1: return h${b}_mix(x) ^ tab[(i * 7u) & 15u];
  case 2: return (x << 5) | (x >> 27);
  default: return x * 2654435761u + i;
  }
}

static int cmp(const void *p, const void *q) {
  unsigned x = *(const unsigned *)p, y = *(const unsigned *)q;
  return (x > y) - (x < y);
}

unsigned s${pad3(i)}_f(unsigned seed) {
  unsigned acc = seed, buf[16];
  memcpy(buf, tab, sizeof buf);
  for (unsigned i = 0; i < 16u; i++) buf[i] = step(buf[i] ^ acc, i);
  qsort(buf, 16, sizeof buf[0], cmp);
  /* body comment ${i} */
  for (unsigned i = 0; i < 64u; i++) acc = step(acc ^ buf[i & 15u], i);
  return acc + 1u;
}
`;
}
function mainC(SOURCES: number): string {
  const lines = ['/* main.c: calls every generated function */', '#include <stdio.h>'];
  for (let i = 0; i < SOURCES; i++) lines.push(`unsigned s${pad3(i)}_f(unsigned);`);
  lines.push('int main(void) {', '  unsigned v, sum = 0;');
  for (let i = 0; i < SOURCES; i++)
    lines.push(`  v = s${pad3(i)}_f(${i}u); sum = sum * 31u + v; printf("s${pad3(i)} %u\\n", v);`);
  lines.push('  printf("sum %u\\n", sum);', '  return 0;', '}', '');
  return lines.join('\n');
}

export interface CProject {
  /** Project-relative path to content. */
  readonly tree: Map<string, string>;
  /** Every object the program links (main.o first). */
  readonly objects: readonly string[];
  /** The C chef's definition for this project. */
  readonly chefDef: string;
  /** make's rules for the same tree, with the same commands. */
  readonly makefile: string;
}

/**
 * The project of SOURCES sources and HEADERS headers in folder DIR. With group > 1 the builtin
 * cc rule gives way to one rule per `group` objects whose command runs their `group` compiles in
 * a row: the ceiling of batching that many compiles into one request, task and result (a header
 * edit then recompiles whole groups).
 */
export function cProject(SOURCES: number, HEADERS: number, DIR: string, group = 1): CProject {
  const tree = new Map<string, string>();
  tree.set(`${DIR}/main.c`, mainC(SOURCES));
  for (let k = 0; k < HEADERS; k++) tree.set(`${DIR}/h${pad2(k)}.h`, header(k));
  for (let i = 0; i < SOURCES; i++) tree.set(`${DIR}/s${pad3(i)}.c`, source(i, HEADERS));
  const objects = [
    `${DIR}/main.o`,
    ...Array.from({ length: SOURCES }, (_, i) => `${DIR}/s${pad3(i)}.o`),
  ];

  // --- the chef definition: the builtin cc rule, a link rule for these objects -------------------
  const builtin = readFileSync(
    join(import.meta.dirname, '../../services/chef/chefs/c.yaml'),
    'utf8',
  );
  const linkAt = builtin.indexOf('  - id: link');
  if (linkAt < 0 || !builtin.includes('  - id: cc'))
    throw new Error(
      'services/chef/chefs/c.yaml no longer has the cc and link rules this bench reads',
    );
  const ccCommand = /\n {4}command: (.*)\n/.exec(builtin.slice(0, linkAt))?.[1];
  if (!ccCommand) throw new Error('no command in the builtin cc rule');
  const ccRules =
    group > 1
      ? groupedCcRules(
          objects.map((o) => o.slice(`${DIR}/`.length, -'.o'.length)),
          group,
          ccCommand,
        )
      : builtin.slice(0, linkAt).trimEnd();
  const chefDef = [
    ccRules,
    '  - id: link',
    `    inputs: [${objects.map((o) => JSON.stringify(o.replace(`${DIR}/`, '{stem}/'))).join(', ')}]`,
    '    outputs: ["{stem}/prog"]',
    '    command: cc -o {out0} {in}',
    '',
  ].join('\n');

  // --- the same rules for make --------------------------------------------------------------------
  // The builtin's command with make's automatic variables, so both run byte-identical commands.
  const makeCc = ccCommand
    .replace('{out1}', '$(@:.o=.d)')
    .replace('{out0}', '$@')
    .replace('{in0}', '$<');
  const makefile = [
    `OBJS = ${objects.join(' ')}`,
    `${DIR}/prog: $(OBJS)`,
    '\tcc -o $@ $^',
    `${DIR}/%.o: ${DIR}/%.c`,
    `\t${makeCc}`,
    '-include $(OBJS:.o=.d)',
    '.PHONY: clean',
    'clean:',
    `\trm -f $(OBJS) $(OBJS:.o=.d) ${DIR}/prog`,
    '',
  ].join('\n');
  return { tree, objects, chefDef, makefile };
}

/** The c type and one rule per `group` objects (bases: file names without .o), compiled in a row. */
function groupedCcRules(bases: readonly string[], group: number, ccCommand: string): string {
  const lines = ['types:', '  - name: c', '    extensions: [c, h]', 'rules:'];
  const q = (p: string) => JSON.stringify(`{stem}/${p}`);
  for (let g = 0; g * group < bases.length; g++) {
    const part = bases.slice(g * group, (g + 1) * group);
    const commands = part.map((_, j) =>
      ccCommand
        .replace('{out1}', `{out${2 * j + 1}}`)
        .replace('{out0}', `{out${2 * j}}`)
        .replace('{in0}', `{in${j}}`),
    );
    lines.push(
      `  - id: cc_g${g}`,
      `    inputs: [${part.map((b) => q(`${b}.c`)).join(', ')}]`,
      `    outputs: [${part.flatMap((b) => [q(`${b}.o`), q(`${b}.d`)]).join(', ')}]`,
      '    discover: makedepend',
      `    command: ${commands.join(' && ')}`,
    );
  }
  return lines.join('\n');
}

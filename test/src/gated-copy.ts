import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Stack } from './stack.js';

/**
 * A chef definition for tests that kill services mid-build: one rule `copy` (g/{stem}.in →
 * g/{stem}.out). An input holding "pause" waits for the test's gate (`gate(stem)`; two minutes
 * at most); it marks that it began (`started(stem)`, `starts(stem)`). A ledger outside the workspace (nothing watches it) gets one line per command run to
 * its end, so a build run twice shows twice.
 */
export class GatedCopy {
  /** The definition file, for CP_CHEF_DEFINITION. */
  readonly definition: string;
  readonly ledger: string;

  constructor(readonly stack: Stack) {
    this.ledger = stack.dir.join('ledger');
    this.definition = stack.dir.join('copy.yaml');
    writeFileSync(
      this.definition,
      [
        'rules:',
        '  - id: copy',
        "    inputs: ['g/{stem}.in']",
        "    outputs: ['g/{stem}.out']",
        `    command: if grep -q pause {in0}; then echo start >> ${stack.dir.path}/started-{stem}; i=0; while [ ! -e ${stack.dir.path}/go-{stem} ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; fi; cp {in0} {out0} && echo {stem} "$(cat {in0})" >> ${this.ledger}`,
        '',
      ].join('\n'),
    );
  }

  /**
   * The paused command of `copy:<stem>` has begun. A task is recorded running before its process
   * is spawned, so a runner killed right after that record may never have started it.
   */
  started(stem: string): boolean {
    return existsSync(this.stack.dir.join(`started-${stem}`));
  }

  /** How many times the paused command of `copy:<stem>` has begun (each copy adds a line). */
  starts(stem: string): number {
    const f = this.stack.dir.join(`started-${stem}`);
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').length - 1 : 0;
  }

  /** Lets the paused command of `copy:<stem>` go on. */
  gate(stem: string): void {
    writeFileSync(this.stack.dir.join(`go-${stem}`), '');
  }

  /** The ledger's lines for one stem: the input each completed run of `copy:<stem>` read. */
  runs(stem: string): string[] {
    return existsSync(this.ledger)
      ? readFileSync(this.ledger, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith(`${stem} `))
          .map((l) => l.slice(stem.length + 1))
      : [];
  }
}

import { CpError } from '@computepods/protocol';

/** stdout carries the command's result only (JSON alone with -o json); everything else is stderr. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(rows: readonly (readonly string[])[], header: readonly string[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(header)}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}

/**
 * A refusal cpctrl reports: its code (printed with -o json; ours, or a service's as it answered)
 * and the process exit code.
 */
export class CliError extends CpError<string> {
  constructor(
    code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(code, message);
  }
}

/** Prints an error the way the output mode asks for, and sets the exit code. */
export function reportError(err: unknown, json: boolean): void {
  const e = err as Error & { code?: string; field?: string; exitCode?: number };
  const code = e.code ?? 'CP_ERROR';
  if (json)
    printJson({ error: { code, message: e.message, ...(e.field ? { field: e.field } : {}) } });
  else process.stderr.write(`cpctrl: ${e.message}\n`);
  process.exitCode = e.exitCode ?? 1;
}

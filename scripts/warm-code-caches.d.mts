/** Starts the bundle `outfile` with `--help` and says whether its code cache is now usable. */
export function warm(outfile: string): { outfile: string; ok: boolean; why: string };

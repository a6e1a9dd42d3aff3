export interface Tool {
  /** The TypeScript entry point, relative to the repository. */
  readonly entry: string;
  /** Where the bundle goes: relative to the repository, or absolute. */
  readonly outfile: string;
}
/** The command-line tools `pnpm build` bundles. */
export const TOOLS: readonly Tool[];
/** The four services `pnpm build` bundles (services/NAME/dist/NAME.mjs). */
export const SERVICES: readonly Tool[];
/** Bundles one tool and lists what went into it in `<outfile>.inputs.json`. */
export function bundle(tool: Tool): Promise<{ outfile: string; inputs: number }>;

/** True when the bundle exists and is newer than every file listed in `<bundle>.inputs.json`. */
export function bundleIsFresh(bundle: URL): boolean;
/** Tells a person at a terminal (stderr) why the sources run through tsx instead. */
export function explainFallback(name: string, bundle: URL): void;
/** Imports the bundle while it is fresh, else the TypeScript sources through tsx's loader. */
export function runFreshOrSources(name: string, bundle: URL, sources: URL): Promise<unknown>;

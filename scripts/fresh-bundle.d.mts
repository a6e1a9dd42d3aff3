/** True when the bundle exists and is newer than every file listed in `<bundle>.inputs.json`. */
export function bundleIsFresh(bundle: URL): boolean;
/** Tells a person at a terminal (stderr) why the sources run through tsx instead. */
export function explainFallback(name: string, bundle: URL): void;

import { UnsafePathError } from './errors.js';

/**
 * Quotes one argument for a POSIX shell: wrapped in single quotes, each ' written as '\''.
 * Nothing inside single quotes is special to sh, so the remote side receives it literally.
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) {
    throw new UnsafePathError(arg, 'a shell argument cannot hold NUL', 'TRANSPORT_UNSAFE_NAME');
  }
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Quotes every argument and joins them into one command line. */
export function shellJoin(args: readonly string[]): string {
  return args.map(shellQuote).join(' ');
}

const SAFE_NAME = /^[A-Za-z0-9._+-]+$/;

/**
 * For names that end up in generated scripts, job names or paths where quoting is not enough
 * assurance (user names, project names, SLURM partitions): letters, digits, . _ + - only,
 * not starting with '-' (it would read as an option) and not '.' or '..'.
 */
export function assertSafeName(name: string, what = 'name'): string {
  if (!SAFE_NAME.test(name) || name.startsWith('-') || name === '.' || name === '..') {
    throw new UnsafePathError(
      name,
      `${what} ${JSON.stringify(name)} may hold only letters, digits, '.', '_', '+', '-' and must not start with '-' or be '.'/'..'; rename it`,
      'TRANSPORT_UNSAFE_NAME',
    );
  }
  return name;
}

export function isSafeName(name: string): boolean {
  try {
    assertSafeName(name);
    return true;
  } catch {
    return false;
  }
}

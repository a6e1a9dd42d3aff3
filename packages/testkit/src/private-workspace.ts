import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What privateWorkspace put there: inputs a staging test declares and checks. */
export interface PrivateWorkspace {
  readonly path: string;
  /** An input whose name a shell would run (`src/a b;$(touch PWN)'.txt`), holding "hello\n". */
  readonly odd: string;
  /** `src/bin`: bytes that are not text (0 1 2 255 10). */
  readonly binary: Buffer;
}

/**
 * A pod's workspace only its owner (the test's user, root here) may enter, mode 0700, so a
 * job user cannot read it and only staging can bring its files to a job: an input with a
 * hostile name, a binary one, and `src/escape`, a symlink leading out of it (/etc/hostname).
 */
export function privateWorkspace(path: string): PrivateWorkspace {
  mkdirSync(join(path, 'src'), { recursive: true });
  chmodSync(path, 0o700);
  const odd = "src/a b;$(touch PWN)'.txt";
  const binary = Buffer.from([0, 1, 2, 255, 10]);
  writeFileSync(join(path, odd), 'hello\n');
  writeFileSync(join(path, 'src/bin'), binary);
  symlinkSync('/etc/hostname', join(path, 'src/escape'));
  return { path, odd, binary };
}

import { runCommand, which } from '@computepods/testkit';

const PACKAGES = ['texlive-latex-base', 'texlive-binaries', 'latexmk'];
const BINARIES = ['pdflatex', 'bibtex', 'latexmk'];

function missing(): string[] {
  return BINARIES.filter((b) => {
    try {
      which(b, '');
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * Installs TeX (Debian's texlive-latex-base, texlive-binaries, latexmk) when a test needs it and
 * it is missing. Not in scripts/setup: on a fresh machine it takes about 2.5 minutes (measured),
 * so only the tests that compile LaTeX pay for it, once per machine.
 */
export async function ensureTex(): Promise<void> {
  if (missing().length === 0) return;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const run = async (args: string[], timeoutMs: number) => {
    const [cmd, ...rest] = [...sudo, ...args] as [string, ...string[]];
    const r = await runCommand(cmd, rest, {
      timeoutMs,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.code !== 0)
      throw new Error(
        `installing TeX failed (${args.join(' ')} exited ${r.code}): ${r.stderr.slice(-2000)}; install ${PACKAGES.join(' ')} by hand`,
      );
  };
  await run(['apt-get', 'update', '-qq'], 120_000);
  await run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...PACKAGES], 480_000);
  const still = missing();
  if (still.length) throw new Error(`TeX installed but ${still.join(', ')} not on PATH`);
}

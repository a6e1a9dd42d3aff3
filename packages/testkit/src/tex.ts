import { runCommand } from './run-command.js';
import { which } from './which.js';

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
 * Installs TeX (Debian's texlive-latex-base, texlive-binaries, latexmk) when a test or bench needs
 * it and it is missing. Not in scripts/setup: on a fresh machine it takes about 2.5 minutes
 * (measured), so only what compiles LaTeX pays for it, once per machine. Every test file that
 * runs pdflatex or bibtex calls it first: one that counted on another having installed it failed
 * on a fresh machine whenever it ran first. Test files run in parallel, so the install holds a
 * lock (flock) and looks again once it has it: the second caller waits for the first's install
 * rather than failing on apt's own lock. Give the caller's hook ~10 minutes.
 */
export async function ensureTex(): Promise<void> {
  if (missing().length === 0) return;
  const root = process.getuid?.() === 0;
  const install = [
    `for b in ${BINARIES.join(' ')}; do command -v "$b" >/dev/null || missing=1; done`,
    '[ -z "$missing" ] && exit 0',
    'apt-get update -qq',
    `apt-get install -y -qq --no-install-recommends ${PACKAGES.join(' ')}`,
  ].join('\n');
  // As root flock runs the install itself; otherwise through sudo -n.
  const locked = ['-w', '600', '/tmp/computepods-ensure-tex.lock', 'sh', '-ec', install];
  const [cmd, args] = root ? ['flock', locked] : ['sudo', ['-n', 'flock', ...locked]];
  const r = await runCommand(cmd, args, {
    timeoutMs: 900_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.code !== 0)
    throw new Error(
      `installing TeX failed (exit ${r.code}): ${r.stderr.slice(-2000)}; install ${PACKAGES.join(' ')} by hand`,
    );
  const still = missing();
  if (still.length) throw new Error(`TeX installed but ${still.join(', ')} not on PATH`);
}

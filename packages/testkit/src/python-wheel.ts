import { runCommand } from './run-command.js';

/**
 * Builds a pure-Python wheel `<name>-<version>-py3-none-any.whl` in `dir` from `modules`
 * (file name → source, put in the package `<name>`), with its METADATA, WHEEL and a RECORD of
 * real hashes, as pip checks them: a package to install with no network (pip's
 * `--no-index --find-links dir`). Made by python3's zipfile; resolves with the wheel's path.
 */
export async function makeWheel(
  dir: string,
  name: string,
  version: string,
  modules: Readonly<Record<string, string>>,
): Promise<string> {
  const script = `
import base64, hashlib, json, os, sys, zipfile
d, name, version, modules = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
info = f"{name}-{version}.dist-info"
files = {f"{name}/{k}": v.encode() for k, v in modules.items()}
files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n".encode()
files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: computepods-testkit\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}" for p, b in files.items()]
record.append(f"{info}/RECORD,,")
files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
path = os.path.join(d, f"{name}-{version}-py3-none-any.whl")
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for p, b in files.items():
        z.writestr(p, b)
print(path)
`;
  const res = await runCommand('python3', [
    '-c',
    script,
    dir,
    name,
    version,
    JSON.stringify(modules),
  ]);
  if (res.code !== 0)
    throw new Error(`could not build the wheel ${name} ${version}: ${res.stderr}`);
  return res.stdout.trim();
}

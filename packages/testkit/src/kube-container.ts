import { type ChildProcess, spawn } from 'node:child_process';
import { which } from './which.js';

/*
 * How the Kubernetes stand-in (kube-api.ts) runs one container of a pod as a local process.
 *
 * Shared (the default): the command runs on this machine as the test's user, in workingDir,
 * seeing every file the runner sees; volumes are not mounted (a shared volume behaves so).
 *
 * Isolated (KubeApiOptions.isolatePods): the command runs as a container runtime would start
 * it, with what Linux gives root here and no image: in its own mount namespace, chrooted into
 * a fresh tmpfs holding this machine's system folders read-only (bin, lib, usr, etc: the
 * "image"), its own /tmp, /proc and /dev, and the pod's volumes (an emptyDir: a folder per
 * pod, shared by its containers; a persistentVolumeClaim: the folder the test bound that
 * claim to) at their mountPaths; as `securityContext.runAsUser`/`runAsGroup` when set, with
 * no supplementary groups. Nothing else of this machine is there: a task's workspace can
 * only reach such a pod through a volume or over the network.
 */

export interface ContainerRun {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The container's workingDir (default "/" isolated; the stand-in's folder shared). */
  readonly workingDir: string | undefined;
}

export interface Isolation {
  /** An empty folder the pod's root file system is mounted on (in its own mount namespace). */
  readonly rootDir: string;
  /** [folder on this machine, mountPath in the container] for each volume mount. */
  readonly mounts: readonly (readonly [string, string])[];
  readonly uid: number;
  readonly gid: number;
}

// Run by /bin/sh as root inside `unshare --mount --propagation private`: the mounts die with
// the namespace, i.e. with the container's last process. Arguments, never interpolated text.
const SANDBOX = `set -e
R=$1; U=$2; G=$3; W=$4; shift 4
mount -t tmpfs -o mode=0755 cp-pod "$R"
for d in bin sbin lib lib32 lib64 libx32 usr etc opt; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d"
  elif [ -d "/$d" ]; then mkdir "$R/$d"; mount --rbind "/$d" "$R/$d"; mount -o remount,bind,ro "$R/$d"
  fi
done
mkdir "$R/proc" "$R/dev" "$R/tmp"
mount -t proc proc "$R/proc" 2>/dev/null || mount --rbind /proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777 cp-tmp "$R/tmp"
while [ "$1" != "--" ]; do mkdir -p "$R$2"; mount --bind "$1" "$R$2"; shift 2; done
shift
# A runtime creates a missing workingDir (as root, as containerd does).
mkdir -p "$R$W"
exec chroot "$R" /usr/bin/setpriv --reuid="$U" --regid="$G" --clear-groups -- /bin/sh -c 'cd "$0" && exec "$@"' "$W" "$@"
`;

/** Starts one container's first process, in its own process group (see the comment above). */
export function spawnContainer(
  run: ContainerRun,
  fallbackCwd: string,
  isolation?: Isolation,
): ChildProcess {
  const [cmd = '/bin/false', ...args] = run.argv;
  const opts = {
    env: { ...run.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'],
  };
  if (!isolation) return spawn(cmd, args, { ...opts, cwd: run.workingDir ?? fallbackCwd });
  const unshare = which('unshare', "install Debian's util-linux (bash scripts/setup does)");
  const volumes = isolation.mounts.flat();
  return spawn(
    unshare,
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      SANDBOX,
      'cp-sandbox',
      isolation.rootDir,
      String(isolation.uid),
      String(isolation.gid),
      run.workingDir ?? '/',
      ...volumes,
      '--',
      cmd,
      ...args,
    ],
    { ...opts, cwd: '/' },
  );
}

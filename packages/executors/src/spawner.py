# The local backend's spawner: a long-lived co-process that starts task wrappers with
# posix_spawn (glibc's clone(CLONE_VM|CLONE_VFORK): no copy of a big parent's page tables, the
# cost that made Node's fork dominate a no-op task), each in its own session and process group,
# stdin /dev/null, stdout/stderr to files in the task folder.
#
# Protocol, one line each way, fields separated by one space, strings hex-encoded:
#   in:  run SEQ DIR CWD COMMAND ENV       ENV: KEY.VALUE pairs joined by "," (or "-": none)
#   out: pid SEQ PID | fail SEQ ERRNO MESSAGE | exit SEQ CODE | signal SEQ SIGNUM
# Started with --times, an exit line goes on: READ SPAWNED REAPED CPU, when it read the request,
# posix_spawn returned and it reaped the wrapper (CLOCK_MONOTONIC, ns) and the CPU the wrapper
# and what it waited for used (us): the runner's CP_TASK_STAGES_FILE (task-stages.ts).
#
# The wrapper records its pid in DIR/pid and the command's exit code in DIR/exit (one write,
# so a reader sees all of it or nothing): a runner restarted after kill -9 collects the result
# from there instead of running the task twice. This process writes DIR/exit too when it reaps
# a wrapper that exited without one (a command that exec'd away from the wrapper or replaced its
# EXIT trap). It runs in its own session, so a signal to the runner's group does not reach it;
# when its input closes (the runner stopped or died) it takes no more work and leaves once its
# last wrapper has ended.
import errno
import os
import re
import select
import signal
import sys
import time

# The command runs in the wrapper shell itself (eval; positional parameters cleared first), and
# an EXIT trap writes its status: one fork less per task than a subshell. A command that could
# leave the wrapper (exec) or re-trap EXIT runs in a subshell instead, so the wrapper always
# writes the exit file. A TERM/KILL to the group ends the wrapper too: then there is no exit
# file, and the record already says why.
TRAPPED = (
    'echo $$ > "$1/pid"; __cpx=$1/exit; trap \'echo $? > "$__cpx"\' EXIT; '
    '__cp=$2; shift $#; eval "unset __cp; $__cp"'
)
SUBSHELL = (
    'echo $$ > "$1/pid"; (__cp=$2; shift $#; eval "unset __cp; $__cp"); c=$?; '
    'echo $c > "$1/exit"; exit $c'
)
LEAVES_WRAPPER = re.compile(r'\b(exec|trap)\b')
# Python ignores these; a task must not inherit that.
DEFAULT_SIGNALS = [s for s in (getattr(signal, n, None) for n in ('SIGPIPE', 'SIGXFSZ')) if s]
CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC

wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)

TIMES = '--times' in sys.argv[1:]
# The tasks' base environment, read once: os.environ decodes each entry at every read.
BASE_ENV = dict(os.environ)
children = {}  # pid -> (seq, dir, read ns, spawned ns)
out = []
# A started task's pid line waits up to PID_HOLD_S for more to say: a short task's pid and exit
# then reach the runner in one write (one wakeup of it and of this process, not two); a longer
# one's pid goes alone. 100 ms covers a compile (pnpm bench cbuild: 40-100 ms each); nothing
# waits for a pid meanwhile (a kill reads it from the pid file the wrapper wrote first).
PID_HOLD_S = 0.1
held = []
held_since = 0.0


def hold_wait():
    """How long select may sleep: for ever, or until the held pid lines are due."""
    if not held:
        return None
    return max(0.0, held_since + PID_HOLD_S - time.monotonic())


def hold(line):
    global held_since
    if not held:
        held_since = time.monotonic()
    held.append(line)


def flush(force=False):
    if not force and not out and (not held or hold_wait() > 0):
        return
    # Pids first: a task's exit line never overtakes its pid line.
    data = ''.join(held + out).encode()
    held.clear()
    out.clear()
    try:
        os.write(1, data)
    except OSError:
        pass  # the runner is gone: results are in the exit files


def unhex(field):
    return bytes.fromhex(field).decode('utf-8', 'surrogateescape')


def run(seq, fields, read_ns):
    try:
        task_dir, cwd, command = (unhex(f) for f in fields[:3])
        env = BASE_ENV
        if fields[3] != '-':
            env = dict(BASE_ENV)
            for pair in fields[3].split(','):
                key, _, value = pair.partition('.')
                env[unhex(key)] = unhex(value)
        fresh_folder(task_dir)
        wrapper = SUBSHELL if LEAVES_WRAPPER.search(command) else TRAPPED
        os.chdir(cwd)
        try:
            pid = os.posix_spawn(
                '/bin/sh',
                ['/bin/sh', '-c', wrapper, 'sh', task_dir, command],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, '/dev/null', os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.path.join(task_dir, 'stdout'), CREATE, 0o666),
                    (os.POSIX_SPAWN_OPEN, 2, os.path.join(task_dir, 'stderr'), CREATE, 0o666),
                ],
                setsid=True,
                setsigdef=DEFAULT_SIGNALS,
                setsigmask=[],
            )
        finally:
            os.chdir('/')
    except OSError as e:
        name = errno.errorcode.get(e.errno, 'EIO') if e.errno else 'EIO'
        detail = f'{e.strerror or e}' + (f', {e.filename}' if e.filename else '')
        out.append(f'fail {seq} {name} {detail.encode().hex()}\n')
        return
    except ValueError as e:  # a NUL byte in the command, the env or a path
        out.append(f'fail {seq} EINVAL {str(e).encode().hex()}\n')
        return
    children[pid] = (seq, task_dir, read_ns, time.monotonic_ns() if TIMES else 0)
    hold(f'pid {seq} {pid}\n')


def fresh_folder(task_dir):
    # One mkdir for a new task (the usual case): nothing stale in it to remove. A folder that
    # is there already (the task run again after a restart) loses its old pid and exit files.
    try:
        os.mkdir(task_dir)
        return
    except FileNotFoundError:
        os.makedirs(task_dir, exist_ok=True)
        return
    except FileExistsError:
        pass
    for stale in ('exit', 'pid'):
        try:
            os.unlink(os.path.join(task_dir, stale))
        except FileNotFoundError:
            pass


def write_exit(task_dir, code):
    try:
        fd = os.open(os.path.join(task_dir, 'exit'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return  # the wrapper wrote it (or the folder is gone)
    try:
        os.write(fd, f'{code}\n'.encode())
    finally:
        os.close(fd)


def reap():
    while children:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        seq, task_dir, read_ns, spawned_ns = children.pop(pid, (None, None, 0, 0))
        if seq is None:
            continue
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            write_exit(task_dir, code)
            times = ''
            if TIMES:
                cpu_us = round((usage.ru_utime + usage.ru_stime) * 1e6)
                times = f' {read_ns} {spawned_ns} {time.monotonic_ns()} {cpu_us}'
            out.append(f'exit {seq} {code}{times}\n')
        else:
            out.append(f'signal {seq} {os.WTERMSIG(status)}\n')


def main():
    pending = b''
    open_input = True
    while open_input or children:
        ready, _, _ = select.select([0, wake_r] if open_input else [wake_r], [], [], hold_wait())
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        if open_input and 0 in ready:
            chunk = os.read(0, 1 << 16)
            read_ns = time.monotonic_ns() if TIMES else 0
            if not chunk:
                open_input = False
            pending += chunk
            *lines, pending = pending.split(b'\n')
            for line in lines:
                f = line.decode('ascii', 'replace').split(' ')
                if f[0] == 'run' and len(f) == 6:
                    run(f[1], f[2:], read_ns)
        reap()
        flush()
    flush(force=True)


main()
sys.exit(0)

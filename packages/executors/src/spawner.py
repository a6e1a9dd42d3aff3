# The local backend's spawner: a long-lived co-process that starts tasks with posix_spawn
# (glibc's clone(CLONE_VM|CLONE_VFORK): no copy of a big parent's page tables, the cost that made
# Node's fork dominate a no-op task), each in its own session and process group, stdin
# /dev/null, stdout/stderr to files in the task folder. A plain command (plain_argv) is started
# directly, as sh would exec it; any other runs in a /bin/sh wrapper.
#
# Protocol, one line each way, fields separated by one space, strings hex-encoded:
#   in:  run SEQ DIR CWD COMMAND ENV LIFE  ENV: KEY.VALUE pairs joined by "," (or "-": none)
#        rerun SEQ DIR CWD COMMAND ENV LIFE (the same, reusing DIR: see take_folder)
#   out: pid SEQ PID | fail SEQ ERRNO MESSAGE | exit SEQ CODE | signal SEQ SIGNUM | claimed SEQ
# LIFE names one life of the task's record (or "-": none); a run's claim on it is the symlink
# DIR/life -> LIFE, made with one symlink(2), which fails if it is there: DIR holding that life
# already (another start of the same life, maybe by another runner's spawner) means nothing is
# started and the answer is `claimed`. A DIR of another life (the task id came back, or the task
# was queued again) is stale: emptied and taken, its claim kept as DIR/life.HEX (HEX: that life,
# hex-encoded), so that a late start of a life that held DIR once also starts nothing.
# --pid-hold=SECONDS: how long a pid line waits for its task's exit (PID_HOLD_S; tests).
# Started with --times, an exit line goes on: READ SPAWNED REAPED CPU, when it read the request,
# posix_spawn returned and it reaped the wrapper (CLOCK_MONOTONIC, ns) and the CPU the wrapper
# and what it waited for used (us): the runner's CP_TASK_STAGES_FILE (task-stages.ts).
#
# The wrapper records its pid in DIR/pid and the command's exit code in DIR/exit (one write,
# so a reader sees all of it or nothing): a runner restarted after kill -9 collects the result
# from there instead of running the task twice. This process writes DIR/exit too when it reaps
# a wrapper that exited without one (a command that exec'd away from the wrapper or replaced its
# EXIT trap). For a task started directly it writes both: "PID START\n" (START: the kernel's
# start time, field 22 of /proc/PID/stat, which names the process for good: its command line
# does not name the folder as the wrapper's does) right after the spawn, and DIR/exit before it
# reaps the process (waitid WNOWAIT first), so that while the process exists, even as a zombie,
# its exit file may still come; a death by signal N is recorded as sh records it, 128 + N, with
# sh's message in DIR/stderr. If this process is killed, a task it started directly goes on
# but nobody writes its exit file (the runner records it failed, saying so).
# It runs in its own session, so a signal to the runner's group does not reach it; when its
# input closes (the runner stopped or died) it takes no more work and leaves once its last task
# has ended.
import errno
import fcntl
import os
import re
import select
import signal
import stat
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

# A plain command is started without the wrapper: one process less, and no shell start-up (a
# no-op task's largest cost). Plain: words of these characters only, none special to sh (dash or
# bash) anywhere in a word (no quote, $, `, \, ~, glob, redirection, separator, comment, brace or
# !), separated by spaces or tabs; a first word that is no assignment (=) and no shell word:
# a builtin runs differently from a program of that name (cd, exit, echo's options), a reserved
# word is syntax. `true` and `false` without arguments are the exception: the programs do
# exactly what the builtins do. sh would exec the first word's file with these words as argv;
# the spawner does the same, after the same PATH search. Anything else (a file not found or not
# executable, a script without #!, dash's %builtin PATH entries) goes to the wrapper: sh itself
# then says what it says (not found: 127).
PLAIN_WORD = r'[A-Za-z0-9_./,:=+@%-]+'
PLAIN = re.compile(rf'[ \t]*({PLAIN_WORD}(?:[ \t]+{PLAIN_WORD})*)[ \t]*')
SHELL_WORDS = frozenset(
    '! { } [[ ]] case do done elif else esac fi for function if in select then time until while '
    '. : [ alias bg bind break builtin caller cd chdir command compgen complete compopt continue '
    'declare dirs disown echo enable eval exec exit export false fc fg getopts hash help history '
    'jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return set '
    'shift shopt source suspend test times trap true type typeset ulimit umask unalias unset wait'.split()
)
SAME_AS_PROGRAM = frozenset(('true', 'false'))
# dash's search path when PATH is unset.
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
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
# As sh passes it on: entries whose names are no shell names are dropped (sh_env).
BASE_SH_ENV = {k: v for k, v in BASE_ENV.items() if NAME.fullmatch(k)}
children = {}  # pid -> (seq, dir, read ns, spawned ns, started directly)
out = []
# A started task's pid line waits up to PID_HOLD_S for more to say: a short task's pid and exit
# then reach the runner in one write (one wakeup of it and of this process, not two), and the
# runner records its start and end in one write; a longer one's pid goes alone. Another task's
# exit going out meanwhile does not take it along. 100 ms covers a compile (pnpm bench cbuild:
# 40-100 ms each); nothing waits for a pid meanwhile (a kill reads it from the pid file the
# wrapper wrote first).
PID_HOLD_S = next(
    (float(a.split('=', 1)[1]) for a in sys.argv[1:] if a.startswith('--pid-hold=')), 0.1
)
held = {}  # seq -> (pid line, monotonic s), oldest first
# Tasks started directly whose pid file is not written yet (pid -> (dir, spawned at, monotonic
# s)): it is written once the task has run for PID_HOLD_S. A short task never needs one (its
# exit file comes first), and reading /proc/PID/stat at once waits for the exec to complete.
# Until then a runner that restarts finds no pid file, and its grace period (seconds) covers
# that; a spawner killed meanwhile leaves output files and no pid file, which the runner never
# starts again.
unrecorded = {}


def hold_wait():
    """How long select may sleep: for ever, or until held pid lines or pid files are due."""
    due = [t + PID_HOLD_S for t in (first_held(), first_unrecorded()) if t is not None]
    if not due:
        return None
    return max(0.0, min(due) - time.monotonic())


def first_held():
    for _, since in held.values():
        return since
    return None


def first_unrecorded():
    for _, since in unrecorded.values():
        return since
    return None


def record_pids():
    """Writes the pid files that are due (oldest first: the dict keeps the order of spawns)."""
    now = time.monotonic()
    while unrecorded:
        pid, (task_dir, since) = next(iter(unrecorded.items()))
        if now - since < PID_HOLD_S:
            return
        del unrecorded[pid]
        write_pid(task_dir, pid)


def hold(seq, line):
    held[seq] = (line, time.monotonic())


def release(seq):
    """A task ended: its pid line, if still held, goes right before its end line."""
    line = held.pop(seq, None)
    if line:
        out.append(line[0])


def flush(force=False):
    now = time.monotonic()
    due = []
    while held:
        seq, (line, since) = next(iter(held.items()))
        if not force and now - since < PID_HOLD_S:
            break
        del held[seq]
        due.append(line)
    if not due and not out:
        return
    # A task's exit line never overtakes its pid line (release).
    data = ''.join(due + out).encode()
    out.clear()
    try:
        os.write(1, data)
    except OSError:
        pass  # the runner is gone: results are in the exit files


def unhex(field):
    return bytes.fromhex(field).decode('utf-8', 'surrogateescape')


def run(seq, fields, read_ns, reuse):
    try:
        task_dir, cwd, command = (unhex(f) for f in fields[:3])
        overlay = {}
        if fields[3] != '-':
            for pair in fields[3].split(','):
                key, _, value = pair.partition('.')
                overlay[unhex(key)] = unhex(value)
        life = unhex(fields[4]) if fields[4] != '-' else None
        if not take_folder(task_dir, life, reuse):
            out.append(f'claimed {seq}\n')
            return
        os.chdir(cwd)
        try:
            pid = spawn_direct(task_dir, command, overlay)
            direct = pid is not None
            if pid is None:
                pid = spawn_wrapped(task_dir, command, overlay)
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
    if direct:
        unrecorded[pid] = (task_dir, time.monotonic())
    children[pid] = (seq, task_dir, read_ns, time.monotonic_ns() if TIMES else 0, direct)
    hold(seq, f'pid {seq} {pid}\n')


def outputs(task_dir):
    return [
        (os.POSIX_SPAWN_OPEN, 0, '/dev/null', os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.path.join(task_dir, 'stdout'), CREATE, 0o666),
        (os.POSIX_SPAWN_OPEN, 2, os.path.join(task_dir, 'stderr'), CREATE, 0o666),
    ]


def spawn_wrapped(task_dir, command, overlay):
    env = BASE_ENV
    if overlay:
        env = dict(BASE_ENV)
        env.update(overlay)
    wrapper = SUBSHELL if LEAVES_WRAPPER.search(command) else TRAPPED
    return os.posix_spawn(
        '/bin/sh',
        ['/bin/sh', '-c', wrapper, 'sh', task_dir, command],
        env,
        file_actions=outputs(task_dir),
        setsid=True,
        setsigdef=DEFAULT_SIGNALS,
        setsigmask=[],
    )


def spawn_direct(task_dir, command, overlay):
    """The pid of a plain command started as sh would exec it (in the cwd), or None: not plain."""
    argv = plain_argv(command)
    if argv is None:
        return None
    env = sh_env(overlay)
    program = find_program(argv[0], env.get('PATH', DEFAULT_PATH))
    if program is None:
        return None
    try:
        return os.posix_spawn(
            program,
            argv,
            env,
            file_actions=outputs(task_dir),
            setsid=True,
            setsigdef=DEFAULT_SIGNALS,
            setsigmask=[],
        )
    except (OSError, ValueError):
        return None  # nothing ran (ENOEXEC: a script without #!, a file gone ...): sh decides


def plain_argv(command):
    m = PLAIN.fullmatch(command)
    if not m:
        return None
    argv = m.group(1).split()
    first = argv[0]
    if '=' in first:
        return None
    if first in SHELL_WORDS and not (first in SAME_AS_PROGRAM and len(argv) == 1):
        return None
    return argv


def find_program(name, path):
    """The file sh would exec for name, or None when sh would do anything else with it."""
    if '/' in name:
        candidates = (name,)
    elif '%' in path:
        return None
    else:
        candidates = (f'{d or "."}/{name}' for d in path.split(':'))
    for candidate in candidates:
        # Most candidates are missing (pnpm puts a dozen folders first): access(2) says so with no
        # exception raised, the costly part of a failed os.stat in Python.
        if not os.access(candidate, os.F_OK):
            continue
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            return candidate if os.access(candidate, os.X_OK) else None
    return None


def sh_env(overlay):
    """
    The environment sh gives the commands it runs: names that are shell names only, IFS, OPTIND
    and PPID (when there) as sh resets them, and PWD: kept when it names the working directory,
    else the directory's path.
    """
    env = dict(BASE_SH_ENV)
    for k, v in overlay.items():
        if NAME.fullmatch(k):
            env[k] = v
    if 'IFS' in env:
        env['IFS'] = ' \t\n'
    if 'OPTIND' in env:
        env['OPTIND'] = '1'
    if 'PPID' in env:
        env['PPID'] = str(os.getpid())  # the wrapper's parent is this process
    pwd = env.get('PWD')
    if not (pwd and pwd.startswith('/') and same_file(pwd, '.')):
        env['PWD'] = os.getcwd()
    return env


def same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def write_pid(task_dir, pid):
    """DIR/pid of a task started directly: its pid and start time, in one write."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            fields = f.read().rsplit(b')', 1)[1].split()
        start = fields[19].decode()  # field 22: after the name, state is the first
        fd = os.open(os.path.join(task_dir, 'pid'), CREATE, 0o666)
    except (OSError, IndexError):
        return  # the folder is gone: nothing will be found there either
    try:
        os.write(fd, f'{pid} {start}\n'.encode())
    finally:
        os.close(fd)


def take_folder(task_dir, life, reuse):
    """
    Makes (or takes) the task folder for one life of the task's record; False when that life
    holds it already and this start may not reuse it. The claim is the symlink `life` (one
    symlink(2), failing if it is there): two starts of one life (a runner restarted while its old
    spawner still reads its last requests, a restarted runner starting a task its dead one
    started before recording it) never both run it. A folder of another life, or of none (made
    before lives), is stale: the task id came back (its record expired while a failed task's
    folder stays for days) or the task was queued again (its runner stopped answering); it is
    emptied and taken, under an flock of the folder, so that two starts that both find it stale
    agree on one claim. The claim replaced is kept (retire): a start of a life that held the
    folder once, arriving late (the spawner of a runner that died, reading its last requests
    after the task's next life took the folder), starts nothing, whatever the clock said when
    each life began. The restart of a task recorded running
    (reuse) always takes the folder, emptied of its old files: an output file there says the
    spawn happened (the runner does not start again a task whose spawner died before its pid
    file was written).
    """
    try:
        os.mkdir(task_dir)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(task_dir), exist_ok=True)
        return take_folder(task_dir, life, reuse)
    except FileExistsError:
        return take_stale(task_dir, life, reuse)
    # A new folder (the usual case): mkdir and symlink, nothing stale in it to remove.
    if life is None:
        return True
    try:
        os.symlink(life, os.path.join(task_dir, 'life'))
        return True
    except FileExistsError:
        # Another start found the new folder before its claim was made and claimed it.
        return take_stale(task_dir, life, reuse)


def take_stale(task_dir, life, reuse):
    marker = os.path.join(task_dir, 'life')
    fd = os.open(task_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not reuse and life is not None:
            try:
                if os.readlink(marker) == life:
                    return False
            except OSError:
                pass  # no claim (or not a symlink): stale
            if os.path.lexists(retired(task_dir, life)):
                return False  # this life held the folder and a later one took it
        for stale in ('exit', 'pid', 'stdout', 'stderr'):
            try:
                os.unlink(os.path.join(task_dir, stale))
            except FileNotFoundError:
                pass
        retire(task_dir, life)
        if life is not None:
            os.symlink(life, marker)
        return True
    finally:
        os.close(fd)


def retired(task_dir, life):
    """Where the claim of `life` is kept once another life took the folder (task-life.ts too)."""
    return os.path.join(task_dir, 'life.' + life.encode().hex())


def retire(task_dir, life):
    """Removes the folder's claim, keeping it as retired() when it names a life other than `life`."""
    marker = os.path.join(task_dir, 'life')
    try:
        held = os.readlink(marker)
    except FileNotFoundError:
        return
    except OSError:
        held = None  # not a symlink: no life to keep
    if held is None or held == life:
        os.unlink(marker)
    else:
        os.rename(marker, retired(task_dir, held))


def write_exit(task_dir, code):
    try:
        fd = os.open(os.path.join(task_dir, 'exit'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return  # the wrapper wrote it (or the folder is gone)
    try:
        os.write(fd, f'{code}\n'.encode())
    finally:
        os.close(fd)


def signal_message(task_dir, signum, dumped):
    """What sh says on its stderr when its command died of a signal (not of SIGINT or SIGPIPE)."""
    if signum in (signal.SIGINT, signal.SIGPIPE):
        return
    text = (signal.strsignal(signum) or f'Signal {signum}') + (' (core dumped)' if dumped else '')
    try:
        fd = os.open(os.path.join(task_dir, 'stderr'), os.O_WRONLY | os.O_APPEND)
    except OSError:
        return
    try:
        os.write(fd, f'{text}\n'.encode())
    finally:
        os.close(fd)


def reap():
    while children:
        # Seen first, reaped after its exit file is written: while the process exists (a
        # zombie too), the runner waits for that file.
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0:
            return
        pid = info.si_pid
        seq, task_dir, read_ns, spawned_ns, direct = children.pop(pid, (None, None, 0, 0, False))
        unrecorded.pop(pid, None)
        if seq is not None:
            if info.si_code == os.CLD_EXITED:
                code = info.si_status
            elif direct:
                # As sh records a command killed by a signal.
                signal_message(task_dir, info.si_status, info.si_code == os.CLD_DUMPED)
                code = 128 + info.si_status
            else:
                code = None  # the wrapper itself was killed: no exit code
            if code is not None:
                write_exit(task_dir, code)
        _, _, usage = os.wait4(pid, 0)
        if seq is None:
            continue
        release(seq)
        if code is None:
            out.append(f'signal {seq} {info.si_status}\n')
            continue
        times = ''
        if TIMES:
            cpu_us = round((usage.ru_utime + usage.ru_stime) * 1e6)
            times = f' {read_ns} {spawned_ns} {time.monotonic_ns()} {cpu_us}'
        out.append(f'exit {seq} {code}{times}\n')


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
                if f[0] in ('run', 'rerun') and len(f) == 7:
                    run(f[1], f[2:], read_ns, f[0] == 'rerun')
        reap()
        record_pids()
        flush()
    flush(force=True)


main()
sys.exit(0)

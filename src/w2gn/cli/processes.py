"""``w2gn fit --processes N``: one fit on several CPU cores, without ``torchrun``.

The command starts ``N`` copies of itself as the ranks of a gloo process group on this machine (the
environment ``torchrun`` would give them: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR/PORT``) and waits.
With 2 processes and the two-sided objective each rank computes one direction of it
(:class:`~w2gn.distributed.DirectionSplitW2GNSolver`): the same steps as one process, each rank doing
about half of the work. Why processes, not threads: at the widths ``w2gn fit`` uses, a step is
hundreds of small matrix products, too small for intra-op threads to help (1.2x on 2 cores).

The parent holds the output's lock; rank 0 shows progress and writes; the other ranks' messages are
shown only if they fail alone. Ctrl-C reaches every rank (the terminal signals the process group):
rank 0 saves the last good checkpoint as a single-process run would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from ..distributed import EXCHANGE_FDS

#: set in the ranks' environment: the parent already holds the output locks (:mod:`.locking`)
LOCKS_HELD = "W2GN_PARENT_HOLDS_LOCKS"
#: the command line the ranks replay (JSON list)
ARGV = "W2GN_RANK_ARGV"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: ``taskset -c 0`` gives 1)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: ``--processes auto`` uses 2 processes only for runs of at least this many steps: starting 2 more
#: interpreters costs a few seconds, which a shorter fit (seconds on a CPU) would not win back
AUTO_MIN_ITERATIONS = 2000
#: seconds a rank gets to exit after SIGTERM when the command ends, before it is killed
STOP_TIMEOUT = 30.0


def resolve_processes(value: str, device: str, correlation_on: str, iterations: int = AUTO_MIN_ITERATIONS) -> int:
    """``--processes``: a count, or ``auto`` = 2 on a CPU with at least 2 usable cores when the objective is
    two-sided (its two directions are what the 2 ranks share) and the run has at least
    :data:`AUTO_MIN_ITERATIONS` steps, else 1."""
    if value != "auto":
        return int(value)
    if str(device).startswith("cuda") or correlation_on != "both" or iterations < AUTO_MIN_ITERATIONS:
        return 1
    return 2 if usable_cores() >= 2 else 1


def spawned_rank() -> bool:
    """Whether this process is a rank started by :func:`launch` (whose parent already spoke and checked)."""
    return bool(os.environ.get(LOCKS_HELD))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(argv: list[str], world: int) -> int:
    """Run ``w2gn ARGV`` as ``world`` local ranks; return the command's exit status (the first failure's).

    Each rank gets ``usable_cores() // world`` (at least 1) torch threads, so ranks do not compete."""
    port = _free_port()
    threads = max(1, usable_cores() // world)
    base = {**os.environ, ARGV: json.dumps(argv), LOCKS_HELD: "1", "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": str(threads)}
    procs: list[subprocess.Popen] = []
    logs: list[tempfile._TemporaryFileWrapper] = []
    # 2 ranks signal each other through a pair of pipes (w2gn.distributed.LocalExchange): each gets only its
    # own ends, so a rank that exits closes its end and its peer reads end-of-file instead of waiting forever
    pipes = [os.pipe(), os.pipe()] if world == 2 else []  # pipes[i]: rank i writes, the other reads
    for rank in range(world):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        fds: tuple[int, ...] = ()
        if pipes:
            read_fd, write_fd = pipes[1 - rank][0], pipes[rank][1]
            env[EXCHANGE_FDS] = f"{read_fd},{write_fd}"
            fds = (read_fd, write_fd)
        # rank 0 talks to the terminal; the others' output is kept in case they fail alone
        log = None if rank == 0 else tempfile.TemporaryFile(mode="w+")
        if log is not None:
            logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK_CODE], env=env, stdout=log, stderr=log,
                                      start_new_session=True, pass_fds=fds))
    for fd in (fd for pair in pipes for fd in pair):
        os.close(fd)  # the ranks hold their ends; the parent's copies would keep a dead rank's pipe open
    try:
        return _wait(procs, logs)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM reached the parent (the ranks run in their own session, so only the parent
        # gets the terminal's signal): interrupt rank 0 alone. It saves the last good state and says where,
        # as a one-process run does; the other ranks then lose their peer and are stopped. Interrupting
        # every rank would race: a rank leaving mid-step fails rank 0's exchange before it can save.
        procs[0].send_signal(signal.SIGINT)
        procs[0].wait()
        return 130
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.terminate()
            try:  # a rank stuck where signals cannot reach Python (inside a collective) must not hang the command
                pr.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait()
        for log in logs:
            log.close()


def _wait(procs: list[subprocess.Popen], logs: list) -> int:
    """Wait for every rank; when one fails, stop the others (they would wait for it forever) and return
    its exit status, showing its messages if it is not rank 0 (whose messages are on the terminal)."""
    while True:
        if all(pr.poll() == 0 for pr in procs):
            return 0
        if any(pr.poll() not in (None, 0) for pr in procs):
            time.sleep(0.5)  # a failure on one rank often fails the others: let rank 0 say it first
            failed = [r for r, pr in enumerate(procs) if pr.poll() not in (None, 0)]
            rank = 0 if 0 in failed else failed[0]
            for pr in procs:
                if pr.poll() is None:
                    pr.terminate()
                pr.wait()
            code = int(procs[rank].returncode)
            if rank > 0:
                log = logs[rank - 1]
                log.seek(0)
                sys.stderr.write(log.read()[-4000:])
            if code < 0:  # killed by a signal: nothing of its own was said
                print(f"w2gn: error: process {rank} of this fit was killed (signal {-code}); the checkpoints "
                      "written so far are kept", file=sys.stderr)
                return 1
            return code
        time.sleep(0.05)


def rank_main() -> int:
    """The body of a rank started by :func:`launch`: the ``w2gn`` command line it was given."""
    from . import main

    # the parent interrupts rank 0 with SIGINT: make sure it raises KeyboardInterrupt here even if this process
    # inherited SIGINT as ignored (a shell without job control starts background commands that way, e.g.
    # 'nohup w2gn fit ... &' in a script), or rank 0 would never save and stop
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _stop_with_parent()
    return main(json.loads(os.environ[ARGV]))


def _stop_with_parent() -> None:
    """Ask Linux to send this rank SIGTERM (saved like Ctrl-C) if the parent dies (e.g. SIGKILL): the
    ranks run in their own session and would otherwise train on unattended. Best effort elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass


#: what each rank runs (``-c``, not ``-m``: this module is already imported by the package it is in)
_RANK_CODE = "import sys; from w2gn.cli.processes import rank_main; sys.exit(rank_main())"

"""CPU time of a running pipeline, per role, read from /proc (Linux).

Why from the outside: the split must cover every process of the real pipeline
(producers, the worker with its intra-op threads, the supervisor's forwarder)
without instrumenting them. Roles are recognised from what each child is: the
inference worker maps libtorch (if the main module imports torch, spawn re-runs
it in every child and all of them do: then the worker is the oldest of them, as
the supervisor starts it before any producer), multiprocessing's resource
tracker names itself on its command line, every other child of the supervisor
is a producer, and the supervisor process itself hosts the forwarder (internal
PULL -> public PUB) and the /metrics server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
ROLES = ("producers", "worker", "supervisor", "other")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class CpuSample:
    """CPU seconds (user + system) so far of every pipeline process: pid -> (role, s)."""

    processes: dict[int, tuple[str, float]] = field(default_factory=dict)

    @property
    def roles(self) -> dict[int, str]:
        return {pid: role for pid, (role, _) in self.processes.items()}


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, start time in ticks) of a live process, None when gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, int(fields[19])


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a live process has used so far; None when gone."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _children(pid: int) -> dict[int, tuple[float, int]]:
    """pid -> (CPU seconds, start time) of the live children of `pid`."""
    kids = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                kids[int(entry.name)] = stat[1:]
    return kids


def _maps_torch(pid: int) -> bool | None:
    """Whether the process maps libtorch; None when it is the resource tracker or gone."""
    try:
        if b"resource_tracker" in (PROC / str(pid) / "cmdline").read_bytes():
            return None
        with open(PROC / str(pid) / "maps", "rb") as maps:
            return any(b"libtorch" in line for line in maps)
    except OSError:
        return None


def _roles(children: dict[int, tuple[float, int]]) -> dict[int, str]:
    torch = {pid: _maps_torch(pid) for pid in children}
    candidates = [pid for pid, has in torch.items() if has]
    worker = min(candidates, key=lambda pid: children[pid][1]) if candidates else None
    return {pid: "other" if torch[pid] is None else "worker" if pid == worker else "producers"
            for pid in children}


def sample(supervisor_pid: int, known: dict[int, str] | None = None) -> CpuSample:
    """CPU seconds so far of the supervisor and its children. `known` (pid -> role
    from an earlier sample) keeps roles stable and saves re-reading /proc/PID/maps."""
    out = CpuSample()
    stat = _stat(supervisor_pid)
    if stat is None:
        return out
    out.processes[supervisor_pid] = ("supervisor", stat[1])
    children = _children(supervisor_pid)
    roles = dict(known or {})
    if any(pid not in roles for pid in children):
        roles.update({pid: role for pid, role in _roles(children).items() if pid not in roles})
    for pid, (seconds, _) in children.items():
        out.processes[pid] = (roles[pid], seconds)
    return out


def delta(start: CpuSample, end: CpuSample) -> tuple[dict[str, float], bool]:
    """CPU seconds per role between two samples over the processes alive at both;
    the flag is False when processes came or went in between (a restart)."""
    seconds = dict.fromkeys(ROLES, 0.0)
    for pid, (role, later) in end.processes.items():
        if pid in start.processes:
            seconds[role] += later - start.processes[pid][1]
    return seconds, start.processes.keys() == end.processes.keys()

"""Soak test: does a pipeline that runs for hours stay the same size?

    python -m stream.bench.soak                      # 30 min, 8 streams, JSON in bench-results/
    python -m stream.bench.soak --minutes 3 --reload-every 20 --rtsp-restart-every 60

Runs the real `adafocus-stream run` with 8 streams (2 from a local RTSP server,
the rest synthetic cameras), replaces one stream by a new one through a SIGHUP
config reload every `--reload-every` seconds, restarts the RTSP server every
`--rtsp-restart-every` seconds, and samples the resident memory of every
process, the file descriptors of the supervisor, the frame rings in /dev/shm
and the Prometheus multiprocess directory. It prints how each grew between the
first sample after warm-up and the last one, and writes every sample to JSON.
Growth that keeps pace with the number of reloads is a leak; a plateau is not.

Not a CI test: it takes as long as you ask. The RTSP server is the tests' own
(stream/bench/rtsp_camera.py, Debian's gst-rtsp-server through /usr/bin/python3) fed
with a clip ffmpeg makes; `--synthetic-only`, or a machine without them, uses
synthetic cameras only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from stream.client import Subscriber
from stream.ring import NAME_PREFIX, SHM_DIR

RTSP_SERVER = Path(__file__).with_name("rtsp_camera.py")
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_STREAMS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- /proc


def rss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (Linux /proc children lists)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ----------------------------------------------------------------------------- sources


class RtspCamera:
    """rtsp_camera.py serving a looping-length H.264 clip on 127.0.0.1."""

    def __init__(self, workdir: Path, seconds: int) -> None:
        self.port = free_port()
        self.clip = workdir / "soak-clip.mp4"
        self.log = workdir / "rtsp-server.log"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", "testsrc=size=320x240:rate=25", "-t", str(seconds), "-c:v", "libx264",
             "-preset", "ultrafast", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
             str(self.clip)],
            check=True, timeout=300,
        )  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/clip"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), "--file",
                 str(self.clip)],
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"RTSP server did not listen within 15 s (see {self.log})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        time.sleep(1.0)
        self.start()
        self.restarts += 1


def rtsp_problem() -> str | None:
    if shutil.which("ffmpeg") is None:
        return "ffmpeg not found"
    if not (Path(SYSTEM_PYTHON).exists() and RTSP_SERVER.exists()):
        return f"{SYSTEM_PYTHON} or {RTSP_SERVER} missing"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode:
        return "gst-rtsp-server (python3-gi) not installed"
    return None


def synthetic(index: int) -> dict[str, str]:
    scene = "digits" if index % 2 else "pattern"
    return {"id": f"syn-{index}", "uri": f"synthetic://{scene}?fps=10&seed={index}"}


# ----------------------------------------------------------------------------- soak


class LabelCounter(threading.Thread):
    """Counts labels per stream from the public socket, as a user would see them."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.counts: Counter[str] = Counter()
        self.last_seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        with Subscriber(self.endpoint) as subscriber:
            while not self.done.is_set():
                message = subscriber.recv(timeout=0.2)
                if message is not None:
                    self.counts[message.stream] += 1
                    self.last_seen[message.stream] = time.monotonic()

    def silent(self, stream_ids: list[str], seconds: float) -> list[str]:
        """Streams without a label in the last `seconds`."""
        now = time.monotonic()
        return [s for s in stream_ids if now - self.last_seen.get(s, -1e9) > seconds]


def model_section(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """--checkpoint, else builtin:digits, else an untrained tiny model (which has no
    skip calibration, so skipping is off)."""
    section = {"device": args.device, "skip": {"mode": args.skip_mode}}
    if args.checkpoint:
        return {**section, "checkpoint": args.checkpoint}
    from adafocus.interface import BUILTIN_DIR

    if (BUILTIN_DIR / "digits.pt").is_file():
        return {**section, "checkpoint": "builtin:digits"}
    from adafocus import AdaFocus, preset, save_checkpoint

    print("soak: no builtin:digits yet; an untrained tiny model (the plumbing is what counts)")
    path = save_checkpoint(workdir / "tiny.pt", AdaFocus(preset("tiny")), list("0123456789"))
    return {**section, "checkpoint": str(path), "skip": {"mode": "off"}}


def sample(supervisor: int, roles: dict[int, str], metrics_dir: Path, t0: float) -> dict:
    processes = {}
    for pid in [supervisor, *descendants(supervisor)]:
        rss = rss_mib(pid)
        if rss is not None:
            processes[str(pid)] = {"role": roles.get(pid, "other"), "rss_mib": round(rss, 2)}
    by_role: dict[str, float] = {}
    for p in processes.values():
        role = "producers" if p["role"].startswith("producer") else p["role"]
        by_role[role] = round(by_role.get(role, 0.0) + p["rss_mib"], 2)
    rings = list(SHM_DIR.glob(NAME_PREFIX + f"{supervisor}_*"))
    shm = os.statvfs(SHM_DIR)
    return {
        "t_s": round(time.monotonic() - t0, 1),
        "processes": processes,
        "rss_mib_by_role": by_role,
        "rss_mib_total": round(sum(p["rss_mib"] for p in processes.values()), 2),
        "supervisor_fds": fd_count(supervisor),
        "rings": len(rings),
        "rings_mib": round(sum(p.stat().st_size for p in rings) / 2**20, 3),
        "dev_shm_used_mib": round((shm.f_blocks - shm.f_bfree) * shm.f_frsize / 2**20, 2),
        "metrics_dir_kib": round(dir_bytes(metrics_dir) / 1024, 1),
    }


def roles_from_log(log: str) -> dict[int, str]:
    roles = {int(pid): f"producer:{slot}" for slot, pid in  # a process serves several streams
             re.findall(r"started producer process (\d+) \(pid (\d+)\)", log)}
    roles.update({int(pid): "worker" for pid in
                  re.findall(r"started inference worker \(pid (\d+)\)", log)})
    return roles


def growth(first: dict, last: dict) -> dict[str, Any]:
    keys = set(first["rss_mib_by_role"]) | set(last["rss_mib_by_role"])
    rss = {
        k: [first["rss_mib_by_role"].get(k, 0.0), last["rss_mib_by_role"].get(k, 0.0)]
        for k in sorted(keys)
    }
    pairs = {k: [first[k], last[k]] for k in
             ("rss_mib_total", "supervisor_fds", "rings", "rings_mib", "dev_shm_used_mib",
              "metrics_dir_kib")}
    return {"rss_mib_by_role": rss, **pairs}


def run_soak(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="adafocus-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    problem = None if args.synthetic_only else rtsp_problem()
    camera = None
    if not args.synthetic_only and problem is None:
        camera = RtspCamera(workdir, seconds=max(60, args.rtsp_restart_every + 30))
        camera.start()
    elif problem:
        print(f"soak: no RTSP ({problem}); synthetic cameras only")
    rtsp = [{"id": f"rtsp-{i}", "uri": camera.url} for i in range(RTSP_STREAMS)] if camera else []
    next_synthetic = args.streams - len(rtsp)
    live = rtsp + [synthetic(i) for i in range(next_synthetic)]
    config = {
        "model": model_section(args, workdir),
        "streams": live,
        "ingest": {"backoff_initial_s": 0.5, "backoff_max_s": 2.0},
        "publish": {"bind": f"tcp://127.0.0.1:{free_port()}"},
        "metrics": {"bind": f"127.0.0.1:{free_port()}"},
    }
    config_path = workdir / "soak.yaml"
    config_path.write_text(yaml.safe_dump(config))
    metrics_dir = workdir / "metrics"
    log_path = workdir / "pipeline.log"
    counter = LabelCounter(config["publish"]["bind"])
    counter.start()
    with log_path.open("wb") as log:
        pipeline = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "run", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        )  # fmt: skip
    print(f"soak: {args.minutes:g} min, {len(live)} streams ({len(rtsp)} RTSP), pipeline pid "
          f"{pipeline.pid}, log {log_path}", flush=True)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_reload = t0 + args.reload_every
    next_rtsp = t0 + args.rtsp_restart_every
    next_sample = t0 + args.warmup
    samples: list[dict] = []
    silent: list[str] = []
    reloads = 0
    status = "ok"
    try:
        while time.monotonic() < end:
            if pipeline.poll() is not None:
                status = f"pipeline exited early with status {pipeline.returncode}"
                break
            now = time.monotonic()
            if now >= next_reload:
                # Replace the oldest synthetic stream by a new one: the ring, producer and
                # per-stream state of one stream come and go every time.
                victim = next(s for s in live if s["id"].startswith("syn-"))
                live = [s for s in live if s is not victim] + [synthetic(next_synthetic)]
                next_synthetic += 1
                config["streams"] = live
                config_path.write_text(yaml.safe_dump(config))
                pipeline.send_signal(signal.SIGHUP)
                reloads += 1
                next_reload += args.reload_every
            if camera is not None and now >= next_rtsp:
                camera.restart()
                next_rtsp += args.rtsp_restart_every
            if now >= next_sample:
                roles = roles_from_log(log_path.read_text(errors="replace"))
                roles[pipeline.pid] = "supervisor"
                samples.append(sample(pipeline.pid, roles, metrics_dir, t0))
                last = samples[-1]
                print(f"soak: t={last['t_s']:>6.0f} s  rss total {last['rss_mib_total']:8.1f} MiB "
                      f"{last['rss_mib_by_role']}  rings {last['rings']}  "
                      f"fds {last['supervisor_fds']}  metrics {last['metrics_dir_kib']} KiB",
                      flush=True)
                next_sample += args.sample_every
            time.sleep(0.2)
        silent = counter.silent([s["id"] for s in live], seconds=15.0)
    finally:
        stop_started = time.monotonic()
        if pipeline.poll() is None:
            pipeline.send_signal(signal.SIGTERM)
        try:
            code = pipeline.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(pipeline.pid, signal.SIGKILL)
            code = pipeline.wait()
        stop_s = time.monotonic() - stop_started
        counter.done.set()
        counter.join(2)
        if camera is not None:
            camera.stop()
    left = [p.name for p in SHM_DIR.glob(NAME_PREFIX + f"{pipeline.pid}_*")]
    errors = [line for line in log_path.read_text(errors="replace").splitlines()
              if " ERROR " in line or "Traceback" in line]
    result = {
        "status": status,
        "minutes": args.minutes,
        "streams": args.streams,
        "rtsp_streams": len(rtsp),
        "reloads": reloads,
        "rtsp_restarts": camera.restarts if camera else 0,
        "labels_per_stream": dict(counter.counts),
        "silent_at_end": silent,
        "exit_status": code,
        "stop_seconds": round(stop_s, 2),
        "rings_left": left,
        "error_lines": errors[:50],
        "growth": growth(samples[0], samples[-1]) if samples else None,
        "samples": samples,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print_summary(result, out)
    return 0 if status == "ok" and code == 0 and not left and not silent else 1


def print_summary(result: dict, out: Path) -> None:
    g = result["growth"]
    print(f"soak: {result['status']}; {result['reloads']} reloads, "
          f"{result['rtsp_restarts']} RTSP restarts; stop {result['stop_seconds']} s, exit "
          f"{result['exit_status']}, rings left {len(result['rings_left'])}, "
          f"{len(result['error_lines'])} error line(s)")
    if g:
        for role, (a, b) in g["rss_mib_by_role"].items():
            print(f"  rss {role:<10} {a:8.1f} -> {b:8.1f} MiB ({b - a:+.1f})")
        for key in ("rss_mib_total", "supervisor_fds", "rings", "rings_mib", "dev_shm_used_mib",
                    "metrics_dir_kib"):
            a, b = g[key]
            print(f"  {key:<17} {a} -> {b}")
    labels = result["labels_per_stream"]
    print(f"  labels received: {sum(labels.values())} over {len(labels)} stream ids; "
          f"silent at the end: {result['silent_at_end'] or 'none'}")
    print(f"soak: samples and summary in {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--reload-every", type=float, default=60.0, metavar="S")
    parser.add_argument("--rtsp-restart-every", type=float, default=300.0, metavar="S")
    parser.add_argument("--sample-every", type=float, default=10.0, metavar="S")
    parser.add_argument("--warmup", type=float, default=20.0, metavar="S",
                        help="first sample after S seconds (model and cameras up)")
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--checkpoint", help="default builtin:digits, else an untrained tiny one")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-mode", default="confidence", choices=("off", "confidence"))
    parser.add_argument("--workdir", help="default: a new temp dir")
    parser.add_argument("--out", default="bench-results/soak.json")
    args = parser.parse_args(argv)
    if args.streams <= RTSP_STREAMS:
        parser.error(f"--streams must be more than {RTSP_STREAMS}")
    return run_soak(args)


if __name__ == "__main__":
    sys.exit(main())

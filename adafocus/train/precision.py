"""The arithmetic of training steps: float32, or bfloat16 autocast where it is native.

Why: on a CPU with AVX512-BF16 (this project's 2-core AMD EPYC) a training step of
the tiny conv stacks under bfloat16 autocast takes a fraction of its float32 time
(`python -m adafocus.train.precision` times the frame stage's step both ways), which
is what fits label-only training of a 200-clip folder in 20 minutes. Where bf16 is
emulated (AVX2/AVX512 without BF16) it would be slower than float32, so "auto" only
takes it where it is native. Losses, softmaxes and the optimiser stay in float32
(autocast runs them so; backward runs outside the autocast region), weights are
float32 throughout, and every checkpoint is float32 as before.

The weights a run ends with depend on the precision, like on the CPU's kernels
(see the README's reproducibility section): the checkpoint's training summary says
which one trained it.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto" -> "bfloat16" where native on `device`, else "float32"; others as given."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return name


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Forward passes of a training step under `precision` (a resolved name)."""
    if precision != "bfloat16":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def outside_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Backward passes and optimiser steps: never under autocast."""
    return torch.autocast(device.type, enabled=False)


def time_frame_step(precision: str, steps: int = 10, batch: int = 32, size: int = 128
                    ) -> float:
    """Median seconds of one training step of folder-tiny.yaml's frame stage (f_L + a
    linear head on max-pooled whole frames, Adam) under `precision`, on random data."""
    from adafocus.config import preset
    from adafocus.models.local import LocalNet

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    local = LocalNet(preset("tiny", frame_size=(size, size), local_strides=(2, 2, 2, 2),
                            local_channels=(48, 96, 128, 160)))
    head = torch.nn.Linear(local.out_features, 10)
    params = [*local.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, 1e-3)
    x, y = torch.randn(batch, 3, size, size), torch.randint(10, (batch,))
    times = []
    for _ in range(steps + 2):  # the first two warm the kernels up
        began = time.perf_counter()
        with autocast(precision, cpu):
            loss = torch.nn.functional.cross_entropy(
                head(local.feature_map(x).amax(dim=(2, 3))).float(), y)
        with outside_autocast(cpu):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - began)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the frame stage's training step in "
                                                 "float32 and bfloat16 autocast.")
    parser.add_argument("--threads", type=int, help="torch threads (default: its own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"native bfloat16: {native_bf16(cpu)}; threads {torch.get_num_threads()}")
    f32, bf16 = time_frame_step("float32"), time_frame_step("bfloat16")
    print(f"frame step (batch 32, 128x128): float32 {f32:.3f} s, bfloat16 {bf16:.3f} s "
          f"(median of 10), ratio {f32 / bf16:.1f}x")


if __name__ == "__main__":
    main()

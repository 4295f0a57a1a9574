"""What every online model shares: a device, uint8 frames in, per-stream recurrent
state, adaptive skipping, results out.

An online model (``OnlineAdaFocus``, ``OnlineBaseline``) keeps each stream's
recurrent state and advances only the streams it is given, one frame each, in a
single batched call. Streams join (first step) and leave (``drop``) at any time; a
stream's results never depend on which other streams share its batch.

:class:`OnlineRunner` does all of that once. A model only says how its network
runs, in two parts (see :meth:`OnlineRunner._glance` and :meth:`OnlineRunner._full`):
a cheap per-frame look whose pooled features tell whether the frame changed, and
the rest of a full step. That split is what adaptive skipping (adafocus.skip)
needs: "skip" runs nothing, "glance" only the first part, "full" both.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from adafocus.graphs import GraphRunner
from adafocus.interface import Costs, StepResult
from adafocus.models.fusion import fold_batchnorm
from adafocus.result_cache import FULL, GLANCE, SKIP, ResultCache
from adafocus.skip import (
    SIGNAL_GRID,
    SkipThresholds,
    StreamSignals,
    frame_thumbnails,
    glance_change,
    may_carry,
    pixel_change,
)
from adafocus.state_table import Hidden, StateTable
from adafocus.upload import Uploader

_WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)


def resolve_device(spec: str | torch.device) -> torch.device:
    """"auto" | "cpu" | "cuda" | "cuda:N" -> torch.device, or a ValueError saying why not."""
    text = str(spec)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r} requested but CUDA is not available here")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {text!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {text!r}")


def normalize_frames(frames: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W), (x / 255 - mean) / std.

    The one place frames become model input, used online and for offline clips, so
    both see identical numbers. The result is a channels-last view of the (..., H, W,
    3) buffer. The arithmetic runs on rows of W * 3 interleaved values, with scale
    and shift repeated W times: with the 3 channels as the innermost dimension the
    elementwise kernels cannot vectorise (about 10x slower on CPU).
    """
    width = frames.shape[-2]
    x = frames.to(torch.float32, memory_format=torch.contiguous_format)
    rows = x.view(*x.shape[:-2], width * 3)
    rows.mul_((1.0 / (255.0 * std)).repeat(width)).sub_((mean / std).repeat(width))
    return x.movedim(-1, -3)


def inference_copy(model: nn.Module, device: torch.device,
                   dtype: torch.dtype | None = None) -> nn.Module:
    """A private eval-mode copy of ``model`` for fast inference on ``device``.

    Copying leaves the caller's module (which may still be training) untouched.
    BatchNorm is folded into the layer before it (adafocus.models.fusion), the layout
    is channels_last and, when ``dtype`` is given (the autocast dtype), floating
    weights are cast once here instead of by autocast on every call.
    """
    clone = copy.deepcopy(model).eval().requires_grad_(False)
    fold_batchnorm(clone)
    return clone.to(device=device, dtype=dtype, memory_format=torch.channels_last)


class OnlineRunner:
    """Per-stream recurrent inference with optional adaptive frame skipping.

    ``skip`` thresholds (None = every frame in full) come from a calibration
    (adafocus.skip). On CUDA the model runs under autocast (bf16 where supported,
    else fp16); recurrent states are kept in float32.

    ``self.model`` is a private inference copy of the given model (see
    :func:`inference_copy`), so the caller's module is never moved, cast or modified.

    The two sub-networks of a step run through adafocus.graphs: on CUDA (unless
    ``cuda_graphs`` is False) as CUDA graphs at power-of-two batch buckets; on the
    CPU directly, or padded to the same buckets with ``pad_batches`` (the CUDA
    path's padding, checked on a CPU).
    """

    def __init__(self, model: nn.Module, class_names: Sequence[str],
                 normalization: dict[str, list[float]], costs: Costs, *,
                 device: str | torch.device = "auto", skip: SkipThresholds | None = None,
                 top_k: int = 5, amp: bool | None = None, cuda_graphs: bool = True,
                 pad_batches: bool = False) -> None:
        if len(class_names) != model.config.num_classes:
            raise ValueError(f"{len(class_names)} class names for a "
                             f"{model.config.num_classes}-class model")
        self._device = resolve_device(device)
        self._cuda = self._device.type == "cuda"
        use_amp = self._cuda if amp is None else amp
        if use_amp and not self._cuda:
            raise ValueError("amp (autocast fp16/bf16) is only used on CUDA")
        self._amp_dtype = None
        if use_amp:
            self._amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported()
                               else torch.float16)
        self.config = model.config
        self.model = inference_copy(model, self._device, self._amp_dtype)
        self._class_names = list(class_names)
        self._mean = torch.tensor(normalization["mean"], dtype=torch.float32, device=self._device)
        self._std = torch.tensor(normalization["std"], dtype=torch.float32, device=self._device)
        self.costs = costs
        self.top_k = max(1, min(top_k, len(class_names)))
        self._results = ResultCache(self._class_names, costs, self.top_k)
        self.skip = skip
        self._table = StateTable(self._initial_hidden(), len(class_names),
                                 3 * SIGNAL_GRID * SIGNAL_GRID)
        self._graphs = GraphRunner(self._device, cuda_graphs, pad_batches)
        self._upload = Uploader(self._device)

    # ---- what a model defines ------------------------------------------------------

    def _initial_hidden(self) -> Hidden:
        """A new stream's recurrent state: one row (no batch dimension) per part."""
        raise NotImplementedError

    def _glance(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The cheap look at input frames (N, 3, H, W): (whatever the full step needs
        from it, pooled features (N, D) whose change decides "glance" vs "full")."""
        raise NotImplementedError

    def _full(self, x: torch.Tensor, glance: Any, pooled: torch.Tensor, hidden: Hidden
              ) -> tuple[torch.Tensor, torch.Tensor | None, Hidden]:
        """The rest of a full step on the rows that need it: (logits (N, K), the
        normalised boxes (N, 4) looked at, None for the whole frame, new hidden)."""
        raise NotImplementedError

    # ---- public state --------------------------------------------------------------

    @property
    def device(self) -> str:
        """Where the model runs, e.g. "cpu" or "cuda:0"."""
        return str(self._device)

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """The autocast dtype the networks run in (None: float32)."""
        return self._amp_dtype

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the uint8 RGB frames step() expects."""
        return tuple(self.config.frame_size)

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def streams(self) -> list[Hashable]:
        """Ids of the streams holding state."""
        return self._table.ids

    @property
    def skip(self) -> SkipThresholds | None:
        """The skip thresholds in force (None: every frame in full)."""
        return self._skip

    @skip.setter
    def skip(self, thresholds: SkipThresholds | None) -> None:
        self._skip = thresholds
        self._results.set_signal(self.costs.skip_signal if thresholds is not None else 0.0)

    def drop(self, stream_id: Hashable) -> None:
        """Release a stream that left. Idempotent."""
        row = self._table.release(stream_id)
        if row is not None:
            self._results.forget(row)

    def reset(self, stream_id: Hashable) -> None:
        """Forget a stream's history (e.g. after a reconnect). A stream's state is made
        on its first step, so forgetting it is dropping it. Idempotent."""
        self.drop(stream_id)

    def logits(self, stream_id: Hashable) -> torch.Tensor:
        """Float32 CPU logits (K,) behind the stream's current label."""
        row = self._table.row(stream_id)
        if row is None or not self._table.labelled[row]:
            raise KeyError(f"stream {stream_id!r} has no result yet")
        return self._table.logits[row].clone()

    def to_input(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) tensor -> normalised float (N, 3, H, W) on the model's device
        in channels_last (non-blocking upload from CPU to CUDA, see _upload)."""
        x = normalize_frames(self._upload(frames), self._mean, self._std)
        return x.contiguous(memory_format=torch.channels_last)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context the model runs under (none on CPU)."""
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self._amp_dtype)

    @torch.inference_mode()
    def record_signals(self, frames: np.ndarray | torch.Tensor) -> StreamSignals:
        """Run one stream's frames (T, H, W, 3) in full (no skipping, a private stream)
        and record what skip calibration needs (adafocus.skip.calibrate)."""
        saved, self.skip = self.skip, None
        key = object()
        thumbs, glance, confidence, predictions = [], [], [], []
        try:
            for frame in frames:
                frame = self._check_frames(frame[None], [key])
                result = self.step(frame, [key])[0]
                thumbs.append(frame_thumbnails(frame)[0].cpu())
                glance.append(self._table.glance[self._table.row(key)].cpu())
                confidence.append(result.score)
                predictions.append(result.class_id)
        finally:
            self.skip = saved
            self.drop(key)
        return StreamSignals(thumbs=torch.stack(thumbs).numpy(),
                             glance=torch.stack(glance).numpy(),
                             confidence=np.array(confidence), predictions=np.array(predictions))

    # ---- the step ------------------------------------------------------------------

    @torch.inference_mode()
    def step(self, frames: np.ndarray | torch.Tensor, stream_ids: Sequence[Hashable]
             ) -> list[StepResult]:
        """Advance the given streams by one frame each.

        frames: uint8 RGB (B, H, W, 3), numpy or tensor (any device), row i belonging
        to ``stream_ids[i]``. New ids start a stream. Returns one StepResult per row.

        Vectorised over the batch: the streams' states are rows of preallocated
        tensors (adafocus.state_table), the skip decision is a few array operations,
        and carried-over labels reuse their results (adafocus.result_cache). The
        step waits for the device once for the results of all fully processed rows;
        with skipping, deciding which rows need more than the glance costs one wait
        more (on the CPU neither is a wait).
        """
        frames = self._check_frames(frames, stream_ids)
        if not stream_ids:
            return []
        table = self._table
        rows = table.rows(stream_ids)
        table.since[rows] += 1
        actions = np.full(len(rows), FULL, np.int8)
        thumbs = None
        if self._skip is not None:
            thumbs = frame_thumbnails(frames)
            refs = table.thumb[torch.from_numpy(rows)].to(thumbs.device)
            actions[self._may_carry(rows, pixel_change(thumbs, refs),
                                    self._skip.pixel_change)] = SKIP
        run = np.flatnonzero(actions != SKIP)
        if len(run):
            self._run(frames, rows, run, actions, thumbs)
        return self._results.results(rows.tolist(), actions.tolist())

    def _may_carry(self, rows: np.ndarray, change: torch.Tensor, change_max: float
                   ) -> np.ndarray:
        """May these streams keep their last label (never one without a label yet)?
        Decided on the host: the confidences and counters live there, and the
        decision is needed there, so ``change`` crosses once."""
        table, skip = self._table, self._skip
        carry = may_carry(change.float().cpu().numpy(), change_max, table.score[rows],
                          skip.confidence, table.since[rows], skip.max_span)
        return carry & table.labelled[rows]

    def _run(self, frames: torch.Tensor, rows: np.ndarray, run: np.ndarray,
             actions: np.ndarray, thumbs: torch.Tensor | None) -> None:
        """The glance on the non-skipped rows ``run``, the full step on those that need
        it; stores the new state of the fully processed streams."""
        if len(run) < len(rows):
            frames = frames[torch.from_numpy(run).to(frames.device)]
        x = self.to_input(frames)
        with self.autocast():
            glance, pooled = self._graphs.run("glance", self._glance, x)
            full = run
            if self._skip is not None:
                g_float = pooled.float()
                refs = self._table.glance_refs(self._rows_on_device(rows[run]), g_float)
                carry = self._may_carry(rows[run], glance_change(g_float, refs),
                                        self._skip.glance_change)
                actions[run[carry]] = GLANCE
                if carry.all():
                    return
                if carry.any():
                    keep = torch.from_numpy(np.flatnonzero(~carry)).to(self._device)
                    x, glance, pooled = x[keep], _rows(glance, keep), pooled[keep]
                full = run[~carry]
            index = self._rows_on_device(rows[full])
            hidden = tuple(part.index_select(0, index) for part in self._table.hidden)
            logits, boxes, hidden = self._graphs.run("full", self._full_rows, x, glance, pooled,
                                                     *hidden)
        self._store(rows[full], index,
                    None if thumbs is None else thumbs[torch.from_numpy(full)],
                    logits.float(), None if boxes is None else boxes.float(),
                    tuple(h.float() for h in hidden), pooled.float())

    def _full_rows(self, x: torch.Tensor, glance: Any, pooled: torch.Tensor,
                   *hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, Hidden]:
        """`_full` with the hidden state's parts as separate arguments (graph inputs)."""
        return self._full(x, glance, pooled, hidden)

    def _store(self, rows: np.ndarray, index: torch.Tensor, thumbs: torch.Tensor | None,
               logits: torch.Tensor, boxes: torch.Tensor | None, hidden: Hidden,
               pooled: torch.Tensor) -> None:
        """Write the fully processed rows' new state and build their results from ONE
        device->host copy: softmax and top-k run batched on the device, and the host
        reads plain Python numbers instead of running small tensor ops per stream."""
        table, k = self._table, self.top_k
        for part, new in zip(table.hidden, hidden, strict=True):
            part.index_copy_(0, index, new)
        table.store_glance(index, pooled)
        top = logits.softmax(-1).topk(k)
        parts = [logits, top.values, top.indices.float()] + ([] if boxes is None else [boxes])
        host = torch.cat(parts, dim=1).cpu()
        num_classes = logits.shape[1]
        host_rows = torch.from_numpy(rows)
        table.logits.index_copy_(0, host_rows, host[:, :num_classes])
        table.score[rows] = host[:, num_classes].numpy()
        table.since[rows] = 0
        table.labelled[rows] = True
        if thumbs is not None:
            table.thumb.index_copy_(0, host_rows, thumbs.cpu())
        self._results.store(rows.tolist(), host.tolist(), num_classes,
                            _WHOLE_FRAME if boxes is None else None)

    def _rows_on_device(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(rows).to(self._device, non_blocking=True)

    # ---- frames in -----------------------------------------------------------------

    def _check_frames(self, frames: np.ndarray | torch.Tensor, stream_ids: Sequence[Hashable]
                      ) -> torch.Tensor:
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(np.ascontiguousarray(frames))
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"frames must be a numpy array or tensor, got {type(frames).__name__}")
        height, width = self.frame_size
        if frames.dtype != torch.uint8 or frames.dim() != 4 or tuple(frames.shape[1:]) != (
                height, width, 3):
            raise ValueError(f"frames must be uint8 RGB (B, {height}, {width}, 3), got "
                             f"{frames.dtype} {tuple(frames.shape)}")
        if len(stream_ids) != frames.shape[0]:
            raise ValueError(f"{frames.shape[0]} frames but {len(stream_ids)} stream ids")
        if len(set(stream_ids)) != len(stream_ids):
            raise ValueError("a stream can advance only one frame per step: duplicate ids in "
                             f"{list(stream_ids)}")
        return frames


def _rows(glance: Any, sel: torch.Tensor) -> Any:
    """The selected rows of what ``_glance`` passes on (a tensor, or None)."""
    return None if glance is None else glance[sel]

"""The results of a step: built once per full step, reused while the label is
carried over.

Why a cache: with adaptive skipping most frames carry the last label over, and
their result differs from the last full one only in ``action``, ``patch``,
``skipped`` and ``gflops``, all fixed for a given action. So each stream's three
results ("full", "skip", "glance") are made when its full step lands (the carried
ones on first use) and a carried frame costs one list lookup instead of building
a dataclass, its top-k list and its patch. Results are frozen, so sharing one
object between frames is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from adafocus.interface import Costs, StepResult

FULL, GLANCE, SKIP = 0, 1, 2  # action codes of a step (numpy int8 arrays)
_ACTIONS = ("full", "glance", "skip")


class ResultCache:
    """Per row: [full result, glance result or None, skip result or None]."""

    def __init__(self, class_names: Sequence[str], costs: Costs, top_k: int) -> None:
        self._names = list(class_names)
        self._costs = costs
        self._k = top_k
        self._signal = 0.0
        self._rows: list[list[StepResult | None] | None] = []

    def set_signal(self, gflops: float) -> None:
        """What the skip signal costs per frame (0 without skipping); the carried
        results are rebuilt with it."""
        self._signal = gflops
        for entry in self._rows:
            if entry is not None:
                entry[FULL] = replace(entry[FULL], gflops=gflops + self._costs.full_step)
                entry[GLANCE] = entry[SKIP] = None

    def forget(self, row: int) -> None:
        if row < len(self._rows):
            self._rows[row] = None

    def store(self, rows: Sequence[int], values: list[list[float]], num_classes: int,
              patch: tuple[float, float, float, float] | None) -> None:
        """Full results of ``rows`` from one host line per row: the logits
        (``num_classes``), the top-k probabilities, the top-k class ids as floats,
        then the box looked at, unless every patch is ``patch`` (the whole frame)."""
        k, names, start = self._k, self._names, num_classes
        gflops = self._signal + self._costs.full_step
        full = self._costs.local_full
        if rows and max(rows) >= len(self._rows):
            self._rows.extend([None] * (max(rows) + 1 - len(self._rows)))
        for row, line in zip(rows, values, strict=True):
            scores = line[start:start + k]
            classes = [int(c) for c in line[start + k:start + 2 * k]]
            self._rows[row] = [StepResult(
                class_id=classes[0], label=names[classes[0]], score=scores[0],
                topk=[(names[c], p) for c, p in zip(classes, scores, strict=True)],
                patch=tuple(line[start + 2 * k:]) if patch is None else patch,
                skipped=False, action="full", gflops=gflops, gflops_full=full), None, None]

    def results(self, rows: Sequence[int], actions: Sequence[int]) -> list[StepResult]:
        """One result per row for these action codes (FULL, GLANCE, SKIP)."""
        out = []
        for row, action in zip(rows, actions, strict=True):
            entry = self._rows[row]
            result = entry[action]
            if result is None:
                result = entry[action] = self._carried(entry[FULL], action)
            out.append(result)
        return out

    def _carried(self, full: StepResult, action: int) -> StepResult:
        cost = self._signal + (self._costs.glance if action == GLANCE else 0.0)
        return replace(full, patch=None, skipped=True, action=_ACTIONS[action], gflops=cost)

"""A long run's saved state (factors, optimizer state, step, trajectory so far), so that a
killed run resumes where it was and ends as an uninterrupted run would."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .backend import to_numpy


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often a long run saves its state, so that a killed run can resume.

    Every ``every`` updates the loop writes (atomically) the factors, the optimizer state, the
    step, the elapsed gradient-flow time, the wall-clock seconds spent so far and the trajectory
    so far to ``path`` (a resumed run's ``wall_seconds`` counts every stretch of it). A run started
    with a checkpoint at ``path`` whose ``key`` matches resumes from it and ends bit-for-bit
    equal to an uninterrupted run (same device and dtype); a checkpoint with another ``key``
    (another run's, or older code's) is ignored and overwritten.
    """

    path: str | os.PathLike
    every: int
    key: str

    def save(self, factors: Sequence[Any], state: Any, t: int, elapsed: float, last_finite: float,
             traj: dict[str, list], wall_seconds: float) -> None:
        from .io import atomic_path

        arrays = {f"factor_{j}": to_numpy(f) for j, f in enumerate(factors)}
        meta = {"key": self.key, "t": t, "elapsed": elapsed, "last_finite": last_finite,
                "state": [_plain(v) for v in state], "trajectory": traj, "wall_seconds": wall_seconds}
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)

    def load(self) -> tuple[list[np.ndarray], list[Any], int, float, float, dict[str, list], float] | None:
        """The saved state, or None when there is no usable checkpoint of this run."""
        if not Path(self.path).is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                factors = [npz[f"factor_{j}"] for j in range(sum(k.startswith("factor_") for k in npz.files))]
        except Exception:  # a damaged checkpoint only costs the time it saved
            return None
        if meta.get("key") != self.key:
            return None
        return (factors, meta["state"], meta["t"], meta["elapsed"], meta["last_finite"], meta["trajectory"],
                meta["wall_seconds"])

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """An optimizer state field as JSON (Python floats round-trip exactly through json)."""
    if isinstance(value, int):
        return value
    return float(value)  # a float, or a 0-d tensor of one (read once per checkpoint)

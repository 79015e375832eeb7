"""Which GPU a workflow job trains on when Snakemake runs several GPU jobs on one machine: each
claims the GPU with the fewest jobs, held by a ``flock`` until the job ends."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import IO


def claim_gpu(visible: int, lock_dir: str | os.PathLike | None = None) -> tuple[int, IO[str]]:
    """A GPU for this process among ``visible`` ones: the one with the fewest processes that
    claimed one, held until the returned file is closed (at the latest when the process ends,
    however it ends: the OS releases the lock).

    Each GPU k has slots ``gpu<k>.slot<s>.lock`` in ``lock_dir`` (default ``$DMFCORE_GPU_LOCKS``,
    else ``<tmp>/dmfcore-gpu-locks-<uid>``); a claim takes the first free slot in the order
    slot 0 of every GPU, then slot 1, ...: with J jobs on G GPUs each GPU holds floor or ceil
    of J / G of them. Slots are ``flock`` locks, atomic between processes on one machine.
    """
    import fcntl

    directory = Path(lock_dir or os.environ.get("DMFCORE_GPU_LOCKS")
                     or Path(tempfile.gettempdir()) / f"dmfcore-gpu-locks-{os.getuid()}")
    directory.mkdir(parents=True, exist_ok=True)
    for slot in itertools.count():
        for gpu in range(visible):
            handle = open(directory / f"gpu{gpu}.slot{slot}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process holds this slot
                handle.close()
                continue
            return gpu, handle
    raise AssertionError("unreachable")


def job_device(device: str, lock_dir: str | os.PathLike | None = None) -> tuple[str, IO[str] | None]:
    """Where a workflow job asking for ``device`` runs, and its claim on a GPU (None if none).

    ``cuda`` on a machine where this process sees several GPUs (Snakemake running GPU jobs
    side by side: ``--resources gpu=K``) is the GPU with the fewest such jobs
    (:func:`claim_gpu`), so that K jobs spread over the GPUs instead of all landing on the
    first; keep the returned file open while training. Any other device, and ``cuda`` where
    one GPU is visible (one GPU, or a scheduler's grant of one: SLURM's), is left as it is.
    """
    if device != "cuda":
        return device, None
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < 2:
        return device, None
    gpu, handle = claim_gpu(visible, lock_dir)
    return f"cuda:{gpu}", handle

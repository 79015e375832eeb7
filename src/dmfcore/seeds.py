"""Independent random streams of one experiment seed.

Seed ``s`` of an experiment draws the ground truth from ``s``, the observations from
``(s, n_obs)``, the initialization from ``(s, depth, 1)`` and a ratings file's random split from
``(s, n_train, 2)``: every depth and the baseline of seed ``s`` therefore share the ground truth
and the observation set (paired), and no two streams coincide.
"""

from __future__ import annotations

# Random streams of a seed s, as numpy SeedSequence entropy. numpy pads entropy with zeros,
# so (s, k) and (s, k, 0) are one stream: each stream ends with its own tag, except the
# observations' (s, n_obs), kept as it was so that existing data files stay valid. The ground
# truth's stream is s itself, i.e. (s, 0): no stream has key 0 (n_obs, depth, n_train >= 1).
STREAM_TAGS = {"observations": 0, "init": 1, "split": 2}


def stream_seed(seed: int, stream: str, key: int) -> tuple[int, ...]:
    """The seed of random stream ``stream`` (see :data:`STREAM_TAGS`) for ``key`` (n_obs, depth...)."""
    tag = STREAM_TAGS[stream]
    return (seed, key) if tag == 0 else (seed, key, tag)

"""Explicit, stateless random seeds: the only way randomness enters kappascope.

Every random function takes a ``seed`` that is either a non-negative Python int or a TFP-style
stateless seed (an integer tensor of shape ``[2]``); sub-seeds are derived with
``tfp.random.split_seed``. An int ``s < 2**62`` maps deterministically to
``[s >> 31, s & (2**31 − 1)]``. ``tfp.random.sanitize_seed`` is *not* used for ints: it draws
them through TensorFlow's stateful RNG, so the same int would give a different stream on each call.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

__all__ = ["SeedLike", "stateless_seed"]

SeedLike = int | tf.Tensor | np.ndarray | Sequence[int]


def stateless_seed(seed: SeedLike, name: str = "seed") -> tf.Tensor:
    """A stateless seed, int32 tensor of shape ``[2]``, from an int or a shape-``[2]`` seed."""
    if seed is None:
        raise ValueError(f"{name} must be given explicitly (an int or a [2] integer seed); no global RNG is used")
    if isinstance(seed, (bool, np.bool_)):
        raise ValueError(f"{name} must be an int or a shape-[2] integer tensor, got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        seed = int(seed)
        if not 0 <= seed < 2**62:
            raise ValueError(f"{name} must be a non-negative int below 2**62, got {seed}")
        return tf.constant([seed >> 31, seed & (2**31 - 1)], dtype=tf.int32)
    try:
        seed = tf.convert_to_tensor(seed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an int or a shape-[2] integer tensor, got {seed!r}") from err
    if not seed.dtype.is_integer or seed.shape.rank != 1 or seed.shape[0] != 2:
        raise ValueError(f"{name} must be an int or a shape-[2] integer tensor, got {seed!r}")
    return tf.cast(seed, tf.int32)

"""Every random-number-generator state a training run may touch, as plain data and tensors.

Saved in checkpoints (and in the in-memory last-good snapshot) so that a resumed run draws exactly
the numbers the uninterrupted run would have drawn: the loop's sampling ``torch.Generator``, torch
CPU and CUDA, NumPy and Python.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    """Every RNG state the training loop may touch, as plain data and tensors."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": [py_version, list(py_internal), py_gauss],
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
        state["generator_device"] = str(generator.device)
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    """Restore what :func:`rng_state` captured (the sampling generator included)."""
    torch.set_rng_state(state["torch_cpu"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if state.get("cuda") and torch.cuda.is_available():
        # a run resumed on a machine with fewer GPUs restores the ones it has
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])

"""Where engine computations run, and with how many CPU threads.

torch's OpenMP threads busy-wait by default: with another process on the same cores, a GP fit ran
30-50x slower here. Workers therefore run with OMP_WAIT_POLICY=PASSIVE (set before torch loads) and
a thread count that fits the CPUs the process may really use, shared by its concurrent jobs.
"""

from __future__ import annotations

import os


def prepare_cpu_environment() -> None:
    """Call before anything imports torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(concurrency: int, reserved: int = 0) -> int:
    """Give each concurrent job an equal share of the usable CPUs (at least one thread).

    An explicit OMP_NUM_THREADS wins: the operator knows what else runs on the machine.
    """
    import torch

    explicit = os.environ.get("OMP_NUM_THREADS", "")
    threads = (
        int(explicit)
        if explicit.isdigit() and int(explicit) > 0
        else max(1, (available_cpus() - reserved) // max(concurrency, 1))
    )
    torch.set_num_threads(threads)
    return threads


def resolve_device(requested: str) -> str:
    """`auto` picks CUDA when a GPU is visible; asking for CUDA without one is an error, not a silent CPU run."""
    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        return requested
    raise ValueError(f"unknown device {requested!r}: use auto, cpu or cuda[:N]")

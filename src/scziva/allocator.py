"""Keep freed tensor memory for reuse while training on the CPU (glibc only).

A training step at 20,000 genes allocates and frees some fifty tensors of 10-20 MB. glibc
serves each from a fresh ``mmap`` (or trims the heap back after it is freed), so every step
pays for its memory again in page faults: about a million minor faults per ten seconds of
training, and a quarter of the step time at 1,000 x 20,000 on 2 cores (measured:
``benchmarks/bench_scziva.py epoch``). PyTorch's CPU allocator has no cache of its own
(its documentation suggests jemalloc or tcmalloc through ``LD_PRELOAD``, which a library
call cannot do). While a fit runs, :func:`reuse_freed_memory` raises glibc's thresholds so
that such blocks come from the heap and stay there, and afterwards trims the heap and sets
a trim threshold again. The result is the same bits; only the time differs. Elsewhere
(macOS, musl, Windows, a GPU) it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
from contextlib import contextmanager

# mallopt parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value (64-bit)
TRIM_THRESHOLD_TRAINING = 1 << 30
TRIM_THRESHOLD_AFTER = 64 << 20


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def reuse_freed_memory(device_type: str = "cpu"):
    """Within the block, large freed blocks stay in the heap for reuse (CPU, glibc)."""
    libc = _glibc() if device_type == "cpu" else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_TRAINING)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
        libc.malloc_trim(0)

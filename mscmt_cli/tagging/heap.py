"""Keep a long tagging process's memory flat.

glibc's allocator keeps freed memory of many differently sized CPU tensors in
its heap, fragmented, so the resident size of ``mscmt tag`` crept up by about
a third between 2,000 and 50,000 tweets (benchmarks/bench_memory.py). Serving
allocations above 128 KiB with ``mmap`` returns them to the system when freed;
measured, the growth fell to under 2%.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024


def limit_heap_fragmentation() -> bool:
    """Set glibc's mmap threshold; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and hasattr(libc, "mallopt") and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except OSError:
        return False

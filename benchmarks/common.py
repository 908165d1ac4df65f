"""What every benchmark prints beside its timings."""

from __future__ import annotations

import os


def machine_load() -> str:
    """The 1-minute load average, which says how far the timings can be trusted on a shared machine."""
    if not hasattr(os, "getloadavg"):
        return "machine load: not available on this system"
    return (f"machine load (1-minute average) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(timings on a shared machine vary with it)")

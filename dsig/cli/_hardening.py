"""Process hardening of the ``dsig`` command (never applied when dsig is used as a library)."""

from __future__ import annotations

import resource


def disable_core_dumps() -> None:
    """RLIMIT_CORE = 0 (soft and hard): a crash must not write PINs, key passwords or a
    decrypted private key to a core file. Lowering the hard limit means nothing later in the
    process can raise it again; done for every command, since secrets can be read by many."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        # Not permitted here (exotic sandbox): keep going, the soft limit may still be lowered.
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        if soft != 0:
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))

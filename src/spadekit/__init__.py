"""spadekit: semantic image synthesis with spatially-adaptive normalization (SPADE / GauGAN)."""

__version__ = "0.1.0"


class SpadekitError(Exception):
    """An error a user can fix: the message says what was wrong, with which file or value, and what to do.

    The CLI prints these as one clear message (no traceback) and exits non-zero.
    """

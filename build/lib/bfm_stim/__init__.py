"""bfm-stim: closed-loop brain stimulation optimization with a brain foundation model surrogate."""

from __future__ import annotations

__version__ = "0.1.0"

from bfm_stim.exceptions import BfmStimError, SafetyLimitError  # noqa: E402
from bfm_stim import io as _io  # noqa: E402,F401  (installs the file readers behind Recording.read/write_fif)

__all__ = ["__version__", "BfmStimError", "SafetyLimitError"]

"""Wendling hippocampal network family (Wendling et al. 2002; 2000 coupling): interictal spikes on sEEG."""

from simulators.wendling.patient import Wendling

__all__ = ["Wendling"]

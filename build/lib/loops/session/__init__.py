"""Closed-loop sessions over LSL: ``bfm-stim session`` (see :mod:`loops.session.store` for the directory)."""

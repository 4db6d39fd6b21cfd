"""Epileptor network family (Jirsa et al. 2014; Proix et al. 2014): focal seizures on sEEG."""

from simulators.epileptor.patient import Epileptor

__all__ = ["Epileptor"]

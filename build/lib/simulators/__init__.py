"""Synthetic patients for bfm-stim: neural-mass model families, registry, cohorts and ground truth.

>>> import simulators
>>> p = simulators.make("bg-beta-v0", seed=3)
>>> x = p.advance(20)            # (n_channels, 20) float32 µV
"""

from __future__ import annotations

from simulators.batch import BatchResult, PatientBatch, simulate_batch
from simulators.bg_beta.patient import BGBeta
from simulators.cortex_jr.patient import CortexJR
from simulators.oracle import BandPowerObjective, HealthyReferenceObjective, band_power, oracle_cost, oracle_optimum
from simulators.patient import Patient, SimResult
from simulators.registry import COHORTS, cohort, cohort_of, list_patients, make, register

__all__ = ["make", "list_patients", "register", "cohort", "cohort_of", "COHORTS", "Patient", "SimResult",
           "CortexJR", "BGBeta", "PatientBatch", "BatchResult", "simulate_batch", "BandPowerObjective",
           "HealthyReferenceObjective", "band_power", "oracle_cost", "oracle_optimum"]

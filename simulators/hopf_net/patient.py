"""``hopf-net``: a Stuart–Landau whole-brain network with a pathological beta generator, ECoG grid.

Declared physiology (drawn from the seed): 16–32 cortical parcels, mirrored across the two
hemispheres, each a Stuart–Landau (Hopf normal form) node as in the whole-brain Hopf model (Deco
et al. 2017, Sci. Rep. 7:3095; Deco et al. 2017, NeuroImage 152:538–550). Structural coupling
follows the exponential distance rule (Ercsey-Ravasz et al. 2013, Neuron 80:184–197) with
log-normal weights, a few random long-range edges (small world) and strong homotopic
inter-hemispheric links. Posterior and lateral parcels oscillate in alpha, the dorsal central
strip in beta (:mod:`.params`); healthy nodes sit below the bifurcation (``a < 0``: noisy damped
oscillations over an aperiodic Lorentzian background).

Pathological regime: one sensorimotor generator is above the bifurcation (``a > 0``): a sustained
beta limit cycle that spreads through the connectome (to its neighbours and its homologue), as
excessive motor-cortical beta synchrony in Parkinson's disease (de Hemptinne et al. 2013). The
healthy twin has the same anatomy and frequencies with the generator below the bifurcation.

Recording: a subdural ECoG grid (10 mm pitch) centred with a patient-specific error over the
generator, plus scalp EEG on the channels the grid leaves. Stimulation: 4, 6 or 8 grid electrodes
nearest the grid centre (cortical surface stimulation). Pulses recruit each node by strength–
duration and current–distance (:mod:`simulators.stimulation`); their effect (pulse-locked forcing,
frequency-dependent desynchronization) is in :mod:`.kernel`. Visual flicker drives the two most
occipital parcels.

Hidden constraint: a corticospinal hot spot lies 5–11 mm from the generator; recruiting it evokes a
contralateral muscle twitch, reported once recruitment passes :data:`params.SIDE_EFFECT_REPORT`.
Its threshold depends on the contact (distance) and the pulse width (its own chronaxie).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus
from simulators.hopf_net import params as P
from simulators.hopf_net.kernel import N_NODE, N_PARAMS, N_STATE, Q_A, Q_KAPPA, Q_OMEGA, Q_TAUAP, X_RE, hopf_block
from simulators.observation import _tag
from simulators.patient import Patient
from simulators.stimulation import HiddenSite, recruitment

__all__ = ["HopfNet", "structural_matrix"]

GRIDS = ((4, 4), (4, 5), (4, 6), (4, 8), (6, 6), (5, 8), (6, 8), (8, 8))  # clinical grid layouts (rows, cols)
SENSORIMOTOR_DIR = np.array([38.0, -8.0, 58.0])  # hand area of the motor strip (right hemisphere), mm


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _hemisphere_points(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """``n`` points of the left convexity (x < −8 mm, z > −25 mm), spread by rejection of close pairs."""
    pts: list[np.ndarray] = []
    min_d = 1.6 * radius / np.sqrt(n)
    while len(pts) < n:
        v = _unit(rng.standard_normal(3)) * radius
        if v[0] > -8.0 or v[2] < -25.0:
            continue
        if all(np.linalg.norm(v - q) >= min_d for q in pts) or rng.random() < 0.02:
            pts.append(v)
    return np.asarray(pts)


def structural_matrix(rng: np.random.Generator, pos_mm: np.ndarray, homologue: np.ndarray) -> np.ndarray:
    """(N, N) symmetric structural coupling from node positions (mm) by the exponential distance rule.

    An edge exists with probability ``exp(−d / EDR_P_LENGTH_MM)`` (plus :data:`params.LONG_RANGE_P`
    random long-range edges) and weighs ``exp(−d / λ) · LogNormal(0, WEIGHT_LOG_SD)``; every node
    keeps its nearest neighbour and its homotopic link (:data:`params.HOMOTOPIC_WEIGHT` × the
    largest weight). Normalised to a mean row sum of 1, zero diagonal.
    """
    N = pos_mm.shape[0]
    d = np.linalg.norm(pos_mm[:, None] - pos_mm[None], axis=-1)
    lam = P.EDR_LENGTH_MM * rng.uniform(0.8, 1.2)
    w = np.exp(-d / lam) * np.exp(rng.normal(0.0, P.WEIGHT_LOG_SD, (N, N)))
    keep = rng.random((N, N)) < np.minimum(1.0, P.EDR_P0 * np.exp(-d / P.EDR_P_LENGTH_MM)) + P.LONG_RANGE_P
    dd = d + np.diag(np.full(N, np.inf))
    keep[np.arange(N), np.argmin(dd, axis=1)] = True
    keep = np.triu(keep | keep.T, 1)
    C = np.where(keep, w, 0.0)
    C = C + C.T
    C[np.arange(N), homologue] = P.HOMOTOPIC_WEIGHT * C.max()
    np.fill_diagonal(C, 0.0)
    return C / C.sum(axis=1).mean()


class HopfNet(Patient):
    """Stuart–Landau whole-brain network patient (see the module docstring).

    Args:
        seed: Patient seed.
        n_nodes: Number of parcels, an even number in 16–32 (default from the seed).
        **kwargs: See :class:`simulators.patient.Patient`.
    """

    family: ClassVar[str] = "hopf-net"
    description: ClassVar[str] = ("Stuart–Landau (Hopf) whole-brain network, EDR connectome (Deco 2017): "
                                  "sensorimotor beta generator, ECoG grid, surface stimulation, "
                                  "hidden motor-twitch threshold")
    default_regime: ClassVar[str] = "pathological"
    channel_range: ClassVar[tuple[int, int]] = (16, 64)
    biomarker_band: ClassVar[tuple[float, float]] = (13.0, 30.0)

    def __init__(self, seed: int, *, n_nodes: int | None = None, **kwargs) -> None:
        if n_nodes is not None and (isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer))
                                    or not 16 <= n_nodes <= 32 or n_nodes % 2):
            raise ValidationError("n_nodes", n_nodes, "an even integer in [16, 32]")
        self._n_nodes = None if n_nodes is None else int(n_nodes)
        super().__init__(seed, **kwargs)
        self._overrides["n_nodes"] = self._n_nodes

    # --- physiology and anatomy ------------------------------------------------------------------
    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        R = P.HEAD_RADIUS_MM
        H = int(rng.integers(P.NODES_PER_HEMISPHERE[0], P.NODES_PER_HEMISPHERE[1] + 1)) if self._n_nodes is None \
            else self._n_nodes // 2
        left = _hemisphere_points(rng, H, R)
        right = _unit(left * np.array([-1.0, 1.0, 1.0]) + rng.normal(0.0, 2.0, (H, 3))) * R
        pos = np.concatenate([left, right])
        N = 2 * H
        homologue = np.concatenate([np.arange(H, N), np.arange(H)])
        C = structural_matrix(rng, pos, homologue)
        # node frequencies: rolandic beta in the dorsal central strip, alpha elsewhere
        central = (np.abs(pos[:, 1]) < P.CENTRAL_STRIP_MM) & (pos[:, 2] > 20.0)
        f_hz = np.where(central, rng.uniform(*P.F_BETA_HZ, N), rng.uniform(*P.F_ALPHA_HZ, N))
        a = rng.uniform(*P.A_HEALTHY, N)
        delta = 2.0 * np.pi * rng.uniform(*P.DELTA_HZ, N)
        tau_ap = rng.uniform(*P.APERIODIC_TAU_S, N)
        # the generator: the node nearest the hand area of a random hemisphere
        side = 1.0 if rng.random() < 0.5 else -1.0
        target = _unit(SENSORIMOTOR_DIR * np.array([side, 1.0, 1.0])) * R
        region = int(np.argmin(np.linalg.norm(pos - target, axis=1)))
        f_hz[region] = rng.uniform(*P.F_REGION_HZ)
        a_path, a_calm = rng.uniform(*P.A_PATHOLOGICAL), rng.uniform(*P.A_REGION_HEALTHY)
        a[region] = a_path if self.regime == "pathological" else a_calm
        node = np.zeros((N_NODE, N))
        node[Q_A], node[Q_OMEGA], node[Q_TAUAP] = a, 2.0 * np.pi * f_hz, tau_ap
        node[Q_KAPPA] = np.maximum(a + delta, 0.0)  # K/2 of the Ott–Antonsen reading (a = K/2 − Δ)
        row = np.zeros(N_PARAMS)
        row[:] = [rng.uniform(*P.COUPLING_G), P.NOISE_SD * rng.uniform(0.85, 1.15), P.PULSE_KICK,
                  P.T50_DESYNC_S * rng.uniform(0.85, 1.15), P.DESYNC_SPREAD, P.TAU_RATE_S, P.APERIODIC_GAIN, N]
        self.kernel_params = {"p": row, "node": node, "W": C}
        self.region, self.homologue = region, homologue
        self.node_freq_hz = f_hz
        self.visual = np.argsort(pos[:, 1])[:2]
        # ECoG grid over the generator (patient-specific placement error and rotation), EEG on the rest
        rows, cols = max((g for g in GRIDS if g[0] * g[1] <= n_channels), key=lambda g: g[0] * g[1])
        u = _unit(pos[region])
        e1 = _unit(np.cross(u, [0.0, 0.0, 1.0]) if abs(u[2]) < 0.99 else np.cross(u, [1.0, 0.0, 0.0]))
        e2 = np.cross(u, e1)
        th = rng.uniform(0.0, np.pi)
        e1, e2 = np.cos(th) * e1 + np.sin(th) * e2, -np.sin(th) * e1 + np.cos(th) * e2
        centre = u * R + rng.normal(0.0, 3.5) * e1 + rng.normal(0.0, 3.5) * e2
        ij = np.array([(r, c) for r in range(rows) for c in range(cols)], float)
        flat = centre[None] + ((ij[:, :1] - (rows - 1) / 2) * e1[None] + (ij[:, 1:] - (cols - 1) / 2) * e2[None]) \
            * P.GRID_PITCH_MM
        grid = _unit(flat) * (R + 1.0)
        n_eeg = n_channels - rows * cols
        eeg = []
        while len(eeg) < n_eeg:
            v = _unit(rng.standard_normal(3))
            if v[2] > -0.1:
                eeg.append(v * (R + 15.0))
        eeg = np.asarray(eeg).reshape(n_eeg, 3)
        self.channel_positions_mm = np.concatenate([grid, eeg])
        self.channel_types = ("ecog",) * (rows * cols) + ("eeg",) * n_eeg
        self.channel_names = tuple(f"G{k}" for k in range(rows * cols)) + tuple(f"E{k}" for k in range(n_eeg))
        self.grid_shape = (rows, cols)
        # stimulating contacts: the grid electrodes nearest the grid centre
        n_contacts = int(rng.choice([4, 6, 8]))
        near = np.argsort(np.linalg.norm(grid - _unit(centre) * (R + 1.0), axis=1), kind="stable")[:n_contacts]
        self.contacts = tuple(Contact(f"G{k}", tuple(np.round(grid[k], 3)), P.CONTACT_AREA_CM2) for k in sorted(near))
        # sources: the parcels' generators below the surface
        self.source_positions_mm = pos * (R - P.SOURCE_DEPTH_MM) / R
        self.target_positions_mm = self.source_positions_mm
        self.source_names = tuple(f"{'L' if k < H else 'R'}{k % H:02d}" for k in range(N))
        self.source_gains = P.SOURCE_GAIN_UV * rng.uniform(0.7, 1.3, N)
        # corticospinal hot spot on the surface, 5–11 mm from the generator
        ang = rng.uniform(0.0, 2.0 * np.pi)
        off = rng.uniform(*P.MOTOR_OFFSET_MM)
        self.motor_mm = _unit(u * R + off * (np.cos(ang) * e1 + np.sin(ang) * e2)) * (R - 2.0)
        self._ctx_k = (P.RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CHRONAXIE_US * rng.uniform(0.8, 1.25))
        self._cs_k = (P.CS_RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CS_CHRONAXIE_US * rng.uniform(0.8, 1.25))

    def _default_state(self) -> dict[str, np.ndarray]:
        x = np.zeros((N_STATE, self.kernel_params["W"].shape[0]))
        x[X_RE] = 0.5
        return {"x": x}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.kernel_params["W"].shape[0], 3)

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
            drive[self.visual] = P.FLICKER_DRIVE * stim.level
        return kick, drive  # auditory clicks: no auditory parcel is modelled

    @staticmethod
    def run_kernel(state, params, noise_key, t0, kicks, drive, dt):
        B, T = kicks.shape[:2]
        src = np.empty((B, T, state["x"].shape[2]))
        hopf_block(state["x"], params["p"], params["node"], params["W"], noise_key, t0, kicks, drive, dt, src)
        return src

    # --- the hidden constraint -------------------------------------------------------------------------
    def _motor_distance(self, contact: str | None) -> float:
        return self._site().distance_mm(self._contact(contact).position_mm)

    def _site(self) -> HiddenSite:
        rh, ch = self._cs_k
        return HiddenSite(self.motor_mm, rheobase_ma=rh, chronaxie_us=ch, distance_k_ma_per_mm2=P.CS_DISTANCE_K, width=P.RECRUIT_WIDTH)

    def _position(self, contact: str | None) -> np.ndarray:
        return np.asarray(self._contact(contact).position_mm)

    def motor_recruitment(self, stim: Stimulus) -> float:
        """Fraction of corticospinal output recruited by ``stim`` (ground truth, no noise)."""
        return self._site().recruited(stim, self._position)

    def side_effect_threshold_ma(self, contact: str, pulse_width_us: float) -> float:
        """Amplitude (mA) at which the twitch appears on ``contact`` (ground truth)."""
        return self._site().threshold_ma(pulse_width_us, self._position(contact))

    def side_effect(self, stim: Stimulus, *, trial: int = 0) -> tuple[float, bool]:
        """(reported severity in [0, 1], reported?) for one trial; severity = corticospinal recruitment + noise."""
        rng = np.random.default_rng([_tag(self.family), self.seed, int(trial) % 2**63, 23])
        return self._site().severity(stim, self._position, rng, report=P.SIDE_EFFECT_REPORT)

    def ground_truth(self) -> dict:
        gt = super().ground_truth()
        gt.update(region=int(self.region), region_name=self.source_names[self.region],
                  homologue=int(self.homologue[self.region]), node_freq_hz=self.node_freq_hz.tolist(),
                  region_band_hz=list(self.biomarker_band), visual_nodes=self.visual.tolist(),
                  motor_mm=self.motor_mm.tolist(), grid_shape=list(self.grid_shape),
                  side_effect_threshold_ma_at_240us={c.name: self.side_effect_threshold_ma(c.name, 240.0)
                                                     for c in self.contacts})
        return gt

"""``bg-beta``: cortex–STN–GPe loops with parkinsonian beta, a DBS lead and a hidden side effect.

Declared physiology (drawn from the seed): three parallel basal-ganglia territories (motor,
associative, limbic; Alexander, DeLong & Strick 1986) each a Pavlides et al. (2015) cortex–STN–GPe
loop. In the parkinsonian regime the motor loop's STN–GPe and hyperdirect couplings are strong
and it oscillates in beta (13–30 Hz); the healthy regime scales them down. The STN territories
sit a few millimetres apart; a 4- or 8-contact DBS lead is placed with a patient-specific error
around the motor STN. Pulses recruit each territory by strength–duration and current–distance
(:mod:`simulators.stimulation`). A pulse train acts on a territory's STN through depressing
afferent synapses and, above ~75 Hz, as an informational lesion of the recruited STN neurons'
output (kernel docstring, with sources): high-frequency trains at a contact near the motor STN
with enough charge open the STN–GPe and cortical loops and beta falls, graded with the recruited
fraction; 10–20 Hz trains do not suppress it (they may entrain it).

Hidden constraint: the internal capsule runs lateral to STN; current spreading to it recruits
corticobulbar/corticospinal fibres and the patient reports a side effect (muscle contraction,
dysarthria) once the recruited fraction passes :data:`params.SIDE_EFFECT_REPORT`. Its threshold
depends on the contact (distance) and the pulse width (its own chronaxie).

Two burst models, one per registered version (a seed is the same anatomy, channels and
measurement noise in both):

* ``burst_model="noise"`` (``bg-beta-v0``): fixed loop gains, beta amplitude fluctuations from
  fast input noise only — bursts of a few tens of ms in the 13–30 Hz envelope.
* ``burst_model="slow-gain"`` (``bg-beta-v1``): each loop's gain fluctuates slowly (an
  Ornstein–Uhlenbeck process, :data:`params.V1_GAIN_TAU_S`) around a mean near its Hopf
  bifurcation, so beta comes in bursts of 100 ms to over a second whose amplitude grows with
  their duration, as in parkinsonian STN recordings (Tinkhauser et al. 2017; sources in
  :mod:`simulators.bg_beta.params` and the kernel docstring).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus
from simulators.bg_beta import params as P
from simulators.bg_beta.kernel import HIST, N_MOD, N_PARAMS, N_STATE, P_NC, P_NS, X_RES, bg_block
from simulators.observation import _tag
from simulators.patient import Patient
from simulators.stimulation import recruitment, threshold_current_ma

__all__ = ["BGBeta", "BURST_MODELS"]

BURST_MODELS = ("noise", "slow-gain")

STN_CENTER_MM = np.array([12.0, -13.0, -5.0])   # right STN, head frame (≈ MNI), mm
TERRITORY_OFFSET_MM = np.array([[1.5, -1.5, 1.5], [0.0, 0.0, 0.0], [-1.5, 2.0, -1.5]])  # motor, assoc., limbic
GPE_MM = np.array([[21.0, -6.0, 1.0], [19.0, -2.0, 0.0], [17.0, 2.0, -2.0]])
CORTEX_MM = np.array([[35.0, -22.0, 62.0], [30.0, 10.0, 55.0], [12.0, 40.0, 5.0]])
CAPSULE_OFFSET_MM = np.array([3.5, 1.5, 1.0])   # from the motor territory, lateral-anterior-dorsal
TERRITORIES = ("motor", "associative", "limbic")


class BGBeta(Patient):
    """Basal-ganglia beta patient with a DBS lead (see the module docstring)."""

    family: ClassVar[str] = "bg-beta"
    description: ClassVar[str] = ("STN–GPe–cortex loops (Pavlides 2015): parkinsonian beta, 4/8-contact DBS lead, "
                                  "hidden internal-capsule side-effect threshold")
    default_regime: ClassVar[str] = "pathological"
    channel_range: ClassVar[tuple[int, int]] = (8, 64)

    def __init__(self, seed: int, *, burst_model: str = "noise", **kwargs) -> None:
        """Args: seed; burst_model: ``"noise"`` (v0) or ``"slow-gain"`` (v1); **kwargs: see :class:`Patient`."""
        if burst_model not in BURST_MODELS:
            raise ValidationError("burst_model", burst_model, f"one of {BURST_MODELS}")
        self.burst_model = burst_model
        super().__init__(seed, **kwargs)
        self._overrides["burst_model"] = burst_model

    def _build(self, rng: np.random.Generator, n_channels: int) -> None:
        L = 3
        jit = lambda sd, n=L: rng.normal(0.0, sd, (n, 3))  # noqa: E731
        stn = STN_CENTER_MM + TERRITORY_OFFSET_MM + jit(0.5)
        gpe = GPE_MM + jit(1.0)
        ctx = CORTEX_MM + jit(3.0)
        self.capsule_mm = stn[0] + CAPSULE_OFFSET_MM + rng.normal(0.0, 0.7, 3)
        tau = rng.uniform(0.7, 0.9)  # faster loops -> higher beta frequency
        p = np.zeros(N_PARAMS)
        p[:] = [P.TAU_S * tau, P.TAU_G * tau, P.TAU_E, P.TAU_I, P.M_S, P.B_S, P.M_G, P.B_G, P.M_E, P.B_E, P.M_I,
                P.B_I, P.C_IN * rng.uniform(0.95, 1.05), P.STR_IN, P.W_CC, P.NOISE_C_HZ * rng.uniform(0.8, 1.2),
                P.NOISE_S_HZ, P.TAU_STIM, 0.1, P.STIM_KICK, P.SYN_USE, P.SYN_TAU_REC, P.T50_BLOCK, P.BLOCK_SPREAD, P.TAU_RATE,
                P.S_TONIC]
        scale = np.array(P.LOOP_SCALE) * rng.uniform(0.97, 1.08) if self.regime == "pathological" \
            else np.full(L, P.HEALTHY_SCALE) * rng.uniform(0.95, 1.05)
        w = np.zeros((6, L))
        w[0], w[1], w[2] = P.W_GS * scale, P.W_SG * scale, P.W_GG
        w[3], w[4], w[5] = P.W_CS * scale, P.W_SC, P.W_CC
        t_sc = P.T_SC * rng.uniform(0.55, 1.0)  # patient-specific cortical return delay
        d = np.round(np.array([P.T_SG, P.T_GS, P.T_GG, P.T_CS, t_sc, P.T_CC]) * self.fs).astype(np.int64)
        mod = np.zeros(N_MOD)
        if self.burst_model == "slow-gain":
            # own stream, so anatomy, channels and measurement noise stay those of the v0 seed
            r1 = np.random.default_rng([_tag(self.family), self.seed, 31])
            scale = np.array(P.V1_LOOP_SCALE) * r1.uniform(0.92, 1.08) if self.regime == "pathological" \
                else np.full(L, P.V1_HEALTHY_SCALE) * r1.uniform(0.92, 1.08)
            w[0], w[1], w[3] = P.W_GS * scale, P.W_SG * scale, P.W_CS * scale
            p[P_NC] *= P.V1_NOISE_SCALE
            p[P_NS] *= P.V1_NOISE_SCALE
            mod[:] = [P.V1_GAIN_SD * r1.uniform(0.85, 1.15), P.V1_GAIN_TAU_S * r1.uniform(0.75, 1.33)]
            d[4] = round(P.T_SC * r1.uniform(*P.V1_T_SC_FACTOR) * self.fs)
        self.kernel_params = {"p": p, "w": w, "d": np.clip(d, 1, HIST - 1), "mod": mod}
        # DBS lead: 4 contacts (3 mm pitch, 3387-like) or 8 (2 mm pitch), placed around motor STN
        n_contacts = int(rng.choice([4, 8]))
        pitch = 3.0 if n_contacts == 4 else 2.0
        u = np.array([0.35, 0.5, 0.8])
        u /= np.linalg.norm(u)
        tip = stn[0] + rng.normal(0.0, 1.2, 3) - u * pitch * (n_contacts / 2 - 0.5) * rng.uniform(0.6, 1.2)
        cpos = tip[None] + np.arange(n_contacts)[:, None] * pitch * u[None]
        self.contacts = tuple(Contact(f"c{i}", tuple(np.round(cpos[i], 3)), 0.06) for i in range(n_contacts))
        # channels: DBS contacts (monopolar LFP) + cortical montage over sensorimotor cortex
        n_surf = n_channels - n_contacts
        surf_type = "ecog" if rng.random() < 0.6 else "eeg"
        r = 80.0 if surf_type == "ecog" else 92.0
        ang = rng.normal(0.0, 0.35, (n_surf, 2))
        centre = CORTEX_MM[0] / np.linalg.norm(CORTEX_MM[0])
        surf = []
        for a, b in ang:
            v = centre + np.array([a, b, -0.3 * (a + b)])
            surf.append(v / np.linalg.norm(v) * r)
        surf = np.asarray(surf).reshape(n_surf, 3)
        self.channel_positions_mm = np.concatenate([cpos, surf])
        self.channel_types = ("dbs",) * n_contacts + (surf_type,) * n_surf
        self.channel_names = tuple(f"DBS{i}" for i in range(n_contacts)) + tuple(
            f"{'G' if surf_type == 'ecog' else 'E'}{i}" for i in range(n_surf))
        # sources: S, G, E per territory (rate deviations, spikes/s)
        self.source_positions_mm = np.concatenate([stn, gpe, ctx - 8.0 * ctx / np.linalg.norm(ctx, axis=1)[:, None]])
        self.source_names = tuple(f"{pop}_{t}" for pop in ("STN", "GPe", "ctxE") for t in TERRITORIES)
        g = rng.uniform(0.7, 1.3)
        self.source_gains = np.concatenate([np.full(L, 0.8 * g), np.full(L, 0.1 * g), np.full(L, 1.5 * g)])
        self.target_positions_mm = stn
        self._stn_k = (P.RHEOBASE_MA * rng.uniform(0.8, 1.25), P.CHRONAXIE_US * rng.uniform(0.8, 1.25))
        self._ic_k = (P.IC_RHEOBASE_MA * rng.uniform(0.8, 1.25), P.IC_CHRONAXIE_US * rng.uniform(0.8, 1.25))

    def _default_state(self) -> dict[str, np.ndarray]:
        L = 3
        x = np.zeros((N_STATE, L))
        x[0], x[1], x[2], x[3] = P.B_S, P.B_G, P.B_E, P.B_I
        x[X_RES] = 1.0
        hist = np.repeat(x[None, :4], HIST, axis=0)
        return {"x": x, "hist": hist, "pos": np.array(0, np.int64)}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (3, 3) if self.burst_model == "slow-gain" else (2, 3)

    def _targets(self, stim: Stimulus) -> tuple[np.ndarray, np.ndarray]:
        if stim.kind != "electrical":  # no sensory pathway in this family
            return np.zeros(self.n_targets), np.zeros(self.n_targets)
        c = np.asarray(self._contact(stim.contact).position_mm)
        d = np.linalg.norm(self.target_positions_mm - c, axis=1)
        rh, ch = self._stn_k
        rho = recruitment(stim.amplitude_ma, stim.pulse_width_us, d, rheobase_ma=rh, chronaxie_us=ch,
                          distance_k_ma_per_mm2=P.DISTANCE_K_MA_PER_MM2, width=P.RECRUIT_WIDTH)
        return rho, np.zeros(self.n_targets)

    @staticmethod
    def run_kernel(state, params, noise_key, t0, kicks, drive, dt):
        B, T = kicks.shape[:2]
        src = np.empty((B, T, 3, state["x"].shape[2]))
        bg_block(state["x"], state["hist"], state["pos"], params["p"], params["w"], params["d"], params["mod"],
                 noise_key, t0, kicks, dt, src)
        return src.reshape(B, T, -1)

    # --- the hidden constraint ----------------------------------------------------------------------
    def _capsule_distance(self, contact: str | None) -> float:
        c = np.asarray(self._contact(contact).position_mm)
        return max(float(np.linalg.norm(c - self.capsule_mm)) - 0.5, 0.0)

    def capsule_recruitment(self, stim: Stimulus) -> float:
        """Fraction of capsule fibres recruited by ``stim`` (ground truth, no noise)."""
        if stim.kind != "electrical" or stim.amplitude_ma <= 0:
            return 0.0
        rh, ch = self._ic_k
        return float(recruitment(stim.amplitude_ma, stim.pulse_width_us, self._capsule_distance(stim.contact),
                                 rheobase_ma=rh, chronaxie_us=ch, distance_k_ma_per_mm2=P.IC_DISTANCE_K,
                                 width=P.RECRUIT_WIDTH)[0])

    def side_effect_threshold_ma(self, contact: str, pulse_width_us: float) -> float:
        """Amplitude (mA) at which the side effect appears on ``contact`` (ground truth)."""
        rh, ch = self._ic_k
        if not pulse_width_us > 0:
            raise ValidationError("pulse_width_us", pulse_width_us, "> 0 µs")
        return float(threshold_current_ma(pulse_width_us, self._capsule_distance(contact), rheobase_ma=rh,
                                          chronaxie_us=ch, distance_k_ma_per_mm2=P.IC_DISTANCE_K))

    def side_effect(self, stim: Stimulus, *, trial: int = 0) -> tuple[float, bool]:
        """(reported severity in [0, 1], reported?) for one trial; severity = capsule recruitment + noise."""
        if stim.kind != "electrical":
            return 0.0, False
        rng = np.random.default_rng([_tag(self.family), self.seed, int(trial) % 2**63, 23])
        sev = float(np.clip(self.capsule_recruitment(stim) + rng.normal(0.0, 0.03), 0.0, 1.0))
        return sev, sev >= P.SIDE_EFFECT_REPORT

    def ground_truth(self) -> dict:
        gt = super().ground_truth()
        gt.update(capsule_mm=self.capsule_mm.tolist(), territories=list(TERRITORIES), burst_model=self.burst_model,
                  side_effect_threshold_ma_at_60us={c.name: self.side_effect_threshold_ma(c.name, 60.0)
                                                    for c in self.contacts})
        return gt

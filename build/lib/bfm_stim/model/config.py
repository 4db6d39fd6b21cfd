"""Configuration of the brain foundation model (BFM).

A :class:`ModelConfig` is a frozen dataclass checked in ``__post_init__``; it round-trips through
plain dicts (``to_dict``/``from_dict``) so checkpoints store it as JSON-able data, never pickles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from bfm_stim.exceptions import ConfigError, ValidationError

__all__ = ["ModelConfig"]


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(name, value, "a positive integer")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the BFM.

    Attributes:
        fs: Sampling rate the model runs at, Hz. Inputs at other rates are resampled first.
        patch_len: Samples per time patch (one latent per patch).
        n_stim_features: Width of the stimulus feature vector (``len(bfm_stim.stim_features.FEATURE_NAMES)``).
        stim_feature_names: Names of the stimulus features, checked when a checkpoint is loaded.
        d_model: Width of the transformer tokens.
        d_latent: Width of the latent state z.
        d_channel: Width of channel tokens and virtual channels.
        n_virtual: Number of virtual channels the read-in cross-attends into.
        d_patient: Width of the patient embedding.
        n_layers: Transformer layers.
        n_heads: Attention heads (divides ``d_model`` and ``d_channel``).
        n_fourier: Random Fourier frequencies for electrode positions.
        fourier_scale_m: Length scale of the Fourier features, m.
        dyn_hidden: Hidden width of each latent dynamics head.
        n_ensemble: Number of dynamics heads (a deep ensemble giving epistemic spread).
        max_patches: Longest sequence of patches the transformer accepts (context length).
        horizon_patches: Default forecast horizon, patches.
        n_train_patients: Rows of the learned patient embedding table (0: none).
        dropout: Dropout probability in the transformer.
        ar_lags: History of the per-patient linear forecaster, samples (0: no linear path). The
            network then predicts what the linear forecast of ongoing activity misses.
        n_harmonics: Harmonics of the stimulation rate in the stimulus-locked head (0: no head).
        stim_rank: Rank of the stimulus-locked head (time courses × spatial patterns).
        response_hidden: Hidden width of the response head, which predicts the encoder latents a
            recorded response will have (what latent objectives measure; 0: no head, latent
            objectives then read the rolled-out latents).
        biomarker_hidden: Hidden width of the biomarker heads, which predict the log band power of
            the response window per channel (:mod:`bfm_stim.model.biomarker`; 0: no heads,
            band-power objectives then read the power of the signal forecast).
        biomarker_bands: (low, high) Hz of each band the heads predict (default, with heads:
            :data:`bfm_stim.model.biomarker.DEFAULT_BANDS`).
    """

    fs: float = 250.0
    patch_len: int = 25
    n_stim_features: int = 16
    stim_feature_names: tuple[str, ...] = ()
    d_model: int = 128
    d_latent: int = 64
    d_channel: int = 32
    n_virtual: int = 8
    d_patient: int = 32
    n_layers: int = 4
    n_heads: int = 4
    n_fourier: int = 16
    fourier_scale_m: float = 0.02
    dyn_hidden: int = 256
    n_ensemble: int = 4
    max_patches: int = 64
    horizon_patches: int = 10
    n_train_patients: int = 0
    dropout: float = 0.1
    ar_lags: int = 0
    n_harmonics: int = 0
    stim_rank: int = 8
    response_hidden: int = 0
    biomarker_hidden: int = 0
    biomarker_bands: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("patch_len", "n_stim_features", "d_model", "d_latent", "d_channel", "n_virtual",
                     "d_patient", "n_layers", "n_heads", "n_fourier", "dyn_hidden", "n_ensemble",
                     "max_patches", "horizon_patches"):
            _positive_int(name, getattr(self, name))
        for name in ("n_train_patients", "ar_lags", "n_harmonics", "response_hidden", "biomarker_hidden"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValidationError(name, v, "an integer >= 0")
        _positive_int("stim_rank", self.stim_rank)
        if self.n_harmonics and not {"on", "log_frequency", "contact_x", "contact_y", "contact_z",
                                     "electrical"} <= set(self.stim_feature_names or ()):
            raise ConfigError("n_harmonics > 0 needs stim_feature_names with on, electrical, log_frequency "
                              "and contact_x/y/z")
        if self.ar_lags > (self.max_patches - self.horizon_patches) * self.patch_len:
            raise ValidationError("ar_lags", self.ar_lags,
                                  f"at most the context length {(self.max_patches - self.horizon_patches) * self.patch_len}")
        if not isinstance(self.n_train_patients, int) or self.n_train_patients < 0:
            raise ValidationError("n_train_patients", self.n_train_patients, "an integer >= 0")
        if not (self.fs > 0):
            raise ValidationError("fs", self.fs, "a positive sampling rate in Hz")
        if not (self.fourier_scale_m > 0):
            raise ValidationError("fourier_scale_m", self.fourier_scale_m, "a positive length in m")
        if not (0.0 <= self.dropout < 1.0):
            raise ValidationError("dropout", self.dropout, "a probability in [0, 1)")
        for name in ("d_model", "d_channel"):
            if getattr(self, name) % self.n_heads:
                raise ValidationError(name, getattr(self, name), f"a multiple of n_heads={self.n_heads}")
        bands = tuple((float(lo), float(hi)) for lo, hi in self.biomarker_bands)
        if self.biomarker_hidden and not bands:
            from bfm_stim.model.biomarker import DEFAULT_BANDS
            bands = DEFAULT_BANDS
        for lo, hi in bands:
            if not 0 <= lo < hi <= self.fs / 2:
                raise ValidationError("biomarker_bands", (lo, hi), f"0 <= low < high <= Nyquist ({self.fs / 2} Hz)")
        object.__setattr__(self, "biomarker_bands", bands)
        if self.biomarker_hidden and not {"contact_x", "contact_y", "contact_z", "electrical"} <= set(self.stim_feature_names or ()):
            raise ConfigError("biomarker_hidden > 0 needs stim_feature_names with electrical and contact_x/y/z")
        names = tuple(self.stim_feature_names)
        object.__setattr__(self, "stim_feature_names", names)
        if names and len(names) != self.n_stim_features:
            raise ConfigError(f"Got {len(names)=} stim_feature_names but {self.n_stim_features=}")

    @property
    def receptive_field(self) -> int:
        """Samples of context each latent can see (``max_patches * patch_len``)."""
        return self.max_patches * self.patch_len

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields."""
        d = asdict(self)
        d["stim_feature_names"] = list(self.stim_feature_names)
        d["biomarker_bands"] = [list(b) for b in self.biomarker_bands]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        """Build from a dict, rejecting unknown keys with :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; allowed: {sorted(known)}")
        kw = dict(d)
        if "stim_feature_names" in kw:
            kw["stim_feature_names"] = tuple(kw["stim_feature_names"])
        if "biomarker_bands" in kw:
            kw["biomarker_bands"] = tuple(tuple(b) for b in kw["biomarker_bands"])
        return cls(**kw)

"""The response head: the encoder latents a recorded response *will have*, predicted from the rollout.

A latent objective measures a trial the way :meth:`bfm_stim.surrogate.Surrogate.latents` reads any
recording: the response alone, normalised by its own per-channel statistics, encoded with the
stimulus input off. The rolled-out latents ``z`` of the dynamics are a different quantity: they are
trained to continue the context's encoding (normalised by the context's statistics, stimulus input
on) and to be read out to the signal. Ranking stimuli by the distance of the rollout to a target
read with :meth:`latents` compares two frames; on the shipped checkpoint it ranked stimuli against
the measured cost (Spearman about −0.6 to −0.9 on bg-beta patients).

This head closes that gap: for every horizon patch it maps (rolled-out latent, stimulus code,
patient embedding, last context latent) to the latent that :meth:`latents` will give the response,
trained against exactly that encoding of the true future (:func:`response_targets`, no gradient
through the target). A latent target is then compared with like.

The head predicts the horizon from stimulus onset (stimulus held); a trial of
:func:`loops.offline.run_trial` and the oracle are scored over the same window, the stimulation
window (``simulators.oracle.SETTLE_S`` = 0). Until 2026-11-26 trials were scored from 0.25 s after
onset to 1.25 s; aligning the windows raised the zero-shot Spearman of predicted vs true cost on
epileptic-cortex patients from 0.22 to 0.29 (bg-beta 0.72 -> 0.71; ``bfm-stim bench ranking``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bfm_stim.model.layers import normalize

__all__ = ["ResponseHead", "response_targets"]


class ResponseHead(nn.Module):
    """Per-patch MLP ``(z_h, code_h, patient, z_0) -> r_h`` with a residual on ``z_h``.

    Args:
        d_latent: latent width D; d_code: stimulus-code width; d_patient: patient-embedding width.
        hidden: hidden width.
    """

    def __init__(self, d_latent: int, d_code: int, d_patient: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(2 * d_latent + d_code + d_patient),
                                 nn.Linear(2 * d_latent + d_code + d_patient, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, d_latent))

    def forward(self, z: Tensor, code: Tensor, patient: Tensor, z0: Tensor) -> Tensor:
        """Args:
            z: (N, H, D) rolled-out latents (one dynamics head's, or the ensemble mean).
            code: (N, H, d_code) stimulus code per horizon patch, or (N, 1, d_code) held.
            patient: (N or 1, d_patient).
            z0: (N or 1, D) last context latent.

        Returns: (N, H, D) predicted response latents.
        """
        n, h, _ = z.shape
        e = patient.reshape(-1, patient.shape[-1]).expand(n, -1)[:, None].expand(-1, h, -1)
        c = code.expand(n, h, -1) if code.shape[1] == 1 else code
        z0 = z0.reshape(-1, z0.shape[-1]).expand(n, -1)[:, None].expand(-1, h, -1)
        return z + self.net(torch.cat([z, c, e, z0], -1))


def response_targets(model: nn.Module, future: Tensor, positions: Tensor, patient: Tensor, *,
                     visible: Tensor | None = None, chan_emb: Tensor | None = None) -> Tensor:
    """The latents :meth:`~bfm_stim.surrogate.Surrogate.latents` gives a recorded response.

    Args:
        model: the :class:`~bfm_stim.model.bfm.BrainFoundationModel`.
        future: (B, C, H * patch_len) the response, any per-channel scale (normalised here by its
            own mean and std, as ``latents`` does).
        positions: (B, C, 3) m; patient: (B, d_patient) embeddings; visible: (B, C) bool.

    Returns: (B, H, D), without gradient, with the model in eval mode (no dropout) as ``latents``.
    """
    was_training = model.training
    model.eval()  # the encoding Surrogate.latents reads: no dropout
    try:
        with torch.no_grad():
            xn, _, _ = normalize(future)
            b, _, t = future.shape
            p = t // model.config.patch_len
            stim = future.new_zeros(b, p, model.config.n_stim_features)
            return model.encode(xn, positions, stim, patient, visible=visible, chan_emb=chan_emb)
    finally:
        model.train(was_training)

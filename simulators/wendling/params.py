"""Default parameters of the Wendling hippocampal network, with units and sources.

Each node is the hippocampal neural mass of Wendling, Bartolomei, Bellanger & Chauvel (2002),
"Epileptic fast activity can be explained by a model of impaired GABAergic dendritic inhibition",
Eur. J. Neurosci. 15:1499–1508: pyramidal cells, excitatory interneurons, slow dendritic-targeting
(GABA_A,slow) and fast somatic-targeting (GABA_A,fast) interneurons, each synapse a second-order
filter ``h(t) = W w t e^{-w t}`` (gain W in mV, rate w in 1/s), each population's firing rate the
sigmoid ``S(v) = 2 e0 / (1 + exp(r (v0 − v)))`` of Jansen & Rit (1995), Biol. Cybern. 73:357–366.
Its regimes are set by the synaptic gains: with A = 5 mV and G = 20 mV, lowering the dendritic
inhibition B from 50 mV takes the population from background activity through sporadic spikes
(B ≈ 38–40 mV) to sustained rhythmic spikes (B ≈ 25–35 mV), slow rhythmic activity and, with B
small, low-voltage fast activity (Wendling 2002, Fig. 3). Populations are coupled as in Wendling,
Bellanger, Bartolomei & Chauvel (2000), "Relevance of nonlinear lumped-parameter models in the
analysis of depth-EEG epileptic signals", Biol. Cybern. 83:367–378: the pyramidal firing of one
population is an excitatory input (added to the extrinsic input p) of the others.

Units: potentials in mV, rates in 1/s, firing and input rates in pulses/s; time in s.
"""

from __future__ import annotations

# --- one population (Wendling et al. 2002, Table 1 and Fig. 3) -------------------------------------
A_MV = 5.0           # A, excitatory synaptic gain, mV
B_MV = 50.0          # B, slow dendritic (GABA_A,slow) inhibitory gain, mV — normal background
G_MV = 20.0          # G, fast somatic (GABA_A,fast) inhibitory gain, mV
A_RATE = 100.0       # a, excitatory synaptic rate (τ = 10 ms), 1/s
B_RATE = 50.0        # b, slow inhibitory rate (τ = 20 ms), 1/s
G_RATE = 500.0       # g, fast inhibitory rate (τ = 2 ms), 1/s
C_CONN = 135.0       # C; C1..C7 = (1, 0.8, 0.25, 0.25, 0.3, 0.1, 0.8) C (Wendling 2002)
E0_HZ = 2.5          # e0, half the maximal firing rate, 1/s (Jansen & Rit 1995)
V0_MV = 6.0          # v0, firing threshold (sigmoid midpoint), mV
R_PER_MV = 0.56      # r, sigmoid steepness, 1/mV
P_MEAN_HZ = 90.0     # mean extrinsic input p, pulses/s (Wendling 2002: Gaussian white noise, mean 90)
P_SD_HZ = 50.0       # s.d. of p, pulses/s, drawn once per 1 ms sample. Wendling 2002 used s.d. 30 per sample
                     # of their (coarser) discretisation; white noise held over a sample has a spectral
                     # density ∝ s.d.² × sample interval, so at 1 kHz a larger s.d. is the like-for-like
                     # value (42 for a 512 Hz original). 50 puts the theta background (≈ 0.4 mV) clearly
                     # above the amplifier's 1/f noise; the B ranges below are calibrated at this value.

# --- regimes (B sets the activity type, Wendling 2002 Fig. 3) ----------------------------------------
# Measured here (single uncoupled population, p s.d. 50, 100 s × 4 noise draws; detector of
# :func:`simulators.wendling.patient.interictal_spikes`): B = 43 mV no spikes, 42: 0.02/s, 41: 0.10/s,
# 40.5: 0.25/s, 40: 0.46/s, 39.5: 0.8/s, 39: 1.2/s; below ≈ 35 mV sustained rhythmic spiking at 3–4 Hz.
# Network input from the neighbours raises the rates somewhat.
B_HEALTHY = (46.0, 56.0)       # healthy populations and every population of the healthy twin, mV
B_EZ = (39.6, 41.0)            # epileptogenic (irritative) zone: sporadic interictal spikes, mV
EZ_NODES = (1, 2)              # populations of the irritative zone (inclusive range)
EZ_SPAN_MM = 8.0               # a second population joins the zone only if it lies this close to the focus
B_PZ = (42.5, 45.0)            # neighbours within PZ_RADIUS_MM: mildly disinhibited, spikes propagate
PZ_RADIUS_MM = 12.0
# Interictal spikes are most frequent on the contacts in and near the seizure-onset zone, with rates of
# the order of tens per minute there that fluctuate over hours (Marsh et al. 2010, Epilepsia 51:592–601;
# Karoly et al. 2016, Brain 139:1066–1078; Conrad et al. 2020, Brain Commun. 2:fcaa042). The design range
# here is 0.1–2 spikes/s in the irritative zone: with the network, 20 evaluation patients gave 0.25–1.8/s
# (median 0.7/s) in their most active zone population.

# --- network (Wendling et al. 2000 coupling) -----------------------------------------------------------
# p_i ← p_i + K Σ_j W_ij S(v_j), W row-normalised exp(-d / λ): the neighbours' pyramidal firing
COUPLING_K = (8.0, 16.0)       # K, pulses/s of input per (pulse/s) of afferent pyramidal firing
COUPLING_LENGTH_MM = 10.0      # λ, space constant of the connectivity, mm
N_NODES = (8, 32)              # populations per patient (inclusive range)

# --- anatomy: one mesial temporal lobe and its neighbours -----------------------------------------------
# Hippocampal populations lie along the hippocampal long axis (head → tail ≈ 40 mm; Duvernoy 2005,
# "The Human Hippocampus"), the others in the surrounding temporal lobe (amygdala, entorhinal and
# parahippocampal cortex, temporal pole, lateral neocortex).
HIPPO_HEAD_MM = (28.0, -10.0, -18.0)   # right hippocampal head, head frame (≈ MNI), mm
HIPPO_AXIS = (0.15, -0.85, 0.5)        # head → tail direction (normalised in the code)
HIPPO_LENGTH_MM = 40.0
HIPPO_FRACTION = 0.4                   # fraction of the populations on the hippocampal axis
LOBE_CENTRE_MM = (42.0, -20.0, -18.0)  # centre of the temporal-lobe ellipsoid, mm
LOBE_SEMIAXES_MM = (14.0, 28.0, 12.0)  # its semi-axes (lateral, antero-posterior, vertical), mm
PITCH_MM = 3.5                          # sEEG contact pitch (centre to centre), mm
CONTACT_AREA_CM2 = 0.05                 # 0.8 mm × 2 mm cylinder, cm²

# --- integration ------------------------------------------------------------------------------------
# Exponential integrator with the sigmoid inputs held over a sub-step (see :mod:`.kernel`). Measured on six
# pathological patients (60 s each, same noise): the irritative zone's spike rate is 0.640/s with 1 sub-step
# (h = 1 ms), 0.649/s with 2 and 0.664/s with 8, and the background peak frequency is identical; one
# sub-step keeps the speed target with a bias (≈ 4 %) well inside the trial-to-trial spread.
SUBSTEPS = 1

# --- electrical stimulation (ours; mechanism after Mina et al. 2013 and Wendling et al. 2016) -----------
# A pulse recruits a fraction ρ of a population (strength–duration and current–distance,
# :mod:`simulators.stimulation`); the recruited axons and terminals act on the pyramidal cells in three
# ways, each a state with a per-pulse step and an exact decay (:mod:`.kernel`):
# (1) GABA_A from basket-cell terminals: activation sa += κ_A ρ (1 − sa), decay τ_A, hyperpolarisation
#     I_A sa — a brief IPSP per pulse that sums into tonic somatic inhibition at ≥ 100 Hz;
# (2) GABA_B: sb += κ_B ρ xb (1 − sb) from a depleting store xb (recovery τ_rec), decay τ_B,
#     hyperpolarisation I_B sb — a long slow IPSP per pulse (Otis, De Koninck & Mody 1993, J. Physiol.
#     470:517: GABA_B IPSPs peak at ~100–150 ms and last ~0.5 s) that saturates at a few Hz;
# (3) extracellular potassium accumulating with the pulse rate and cleared in ~0.2 s, with a ceiling
#     (Heinemann & Lux 1977, Brain Res. 120:231–249): k += κ_K ρ (1 − k), depolarisation D_K k.
# Net effect on the irritative zone: 2–5 Hz trains suppress spikes through the slow GABA_B inhibition,
# 20–60 Hz trains are ineffective (the potassium depolarisation cancels the inhibition), ≥ 100 Hz trains
# suppress through tonic GABA_A inhibition — the U-shaped frequency dependence measured by Mina,
# Benquet, Pasnicu, Biraben & Wendling (2013), "Modulation of epileptic activity by deep brain
# stimulation: a model-based study of frequency-dependent effects", Front. Comput. Neurosci. 7:94 (LFS
# < 2 Hz and HFS > 70 Hz reduced epileptic activity, ~50 Hz did not). Stimulation acting through
# GABAergic interneurons in this model class: Wendling, Benquet, Bartolomei & Jirsa (2016), J. Neurosci.
# Methods 260:233–251. Low-frequency stimulation reducing interictal discharges in mesial temporal lobe
# epilepsy: Koubeissi et al. (2013), Ann. Neurol. 74:223–231.
STIM_KAPPA_A = 0.05       # κ_A, GABA_A activation step per pulse at full recruitment
STIM_TAU_A_S = 0.020      # τ_A, decay of the somatic GABA_A IPSP, s
STIM_I_A_MV = 10.5        # I_A, hyperpolarisation at full GABA_A activation, mV (0.5 mV per pulse at ρ = 1)
STIM_KAPPA_B = 0.6        # κ_B, GABA_B activation step per pulse at full recruitment and full store
STIM_TAU_B_S = 0.30       # τ_B, decay of the GABA_B activation, s
STIM_TREC_B_S = 1.0       # recovery of the GABA store behind the GABA_B response, s
STIM_I_B_MV = 3.3         # I_B, hyperpolarisation at full GABA_B activation, mV
STIM_KAPPA_K = 0.30       # κ_K, potassium step per pulse at full recruitment (ceiling at k = 1)
STIM_TAU_K_S = 0.20       # τ_K, potassium clearance, s
STIM_D_K_MV = 3.4         # D_K, depolarisation at the potassium ceiling, mV
RHEOBASE_MA = 0.4         # rheobase at the contact (distance 0), mA
CHRONAXIE_US = 250.0      # chronaxie of hippocampal neurons, µs (order of Ranck 1975: 200–700 µs)
DISTANCE_K_MA_PER_MM2 = 0.10  # current–distance constant, mA/mm² (Ranck 1975)
REGION_CORE_MM = 3.0      # a population is a patch of tissue: distances count from this radius

# --- side effect: afterdischarges (ADs) ----------------------------------------------------------------
# sEEG stimulation of mesial temporal structures evokes afterdischarges above a charge threshold, lowest
# in the epileptogenic hippocampus (Trébuchon & Chauvel 2016, J. Clin. Neurophysiol. 33:511–521; Lesser
# et al. 1984, Neurology 34:1295). The AD-prone tissue lies 1–4 mm from the zone centre, so the
# contact that suppresses spikes best is also the one with the least headroom.
AD_DISTANCE_MM = (1.0, 4.0)   # from the irritative zone centre, uniform range
AD_RHEOBASE_MA = 1.0          # mA at 0 mm
AD_CHRONAXIE_US = 200.0       # µs
AD_DISTANCE_K = 0.08          # mA/mm²
SIDE_EFFECT_REPORT = 0.3      # an AD is seen once the recruited AD-prone fraction exceeds this

# --- aperiodic field component ----------------------------------------------------------------------
# A neural mass driven by white input has a flat spectrum below its theta peak, unlike the 1/f rise of
# intracranial recordings (Gao, Peterson & Voytek 2017, NeuroImage 158:70; Frauscher et al. 2018, Brain
# 141:1130). Each population's field therefore adds a Lorentzian (Ornstein–Uhlenbeck) component, as the
# hopf-net family does: slow synaptic currents the mass does not model. It enters the output only.
FIELD_TAU_S = (0.15, 0.35)     # time constant of the component, s (knee ≈ 0.5–1 Hz), uniform range
FIELD_SD_MV = 0.6              # its stationary s.d., mV (healthy fit over 1–40 Hz: χ ≈ 1.6 on 3 patients)

# --- observation ------------------------------------------------------------------------------------
SOURCE_GAIN_UV_PER_MV = 120.0 # potential at 0 mm per mV of pyramidal membrane potential, µV/mV
                              # (interictal spikes of ~0.3–1 mV on hippocampal sEEG contacts)

"""Default parameters of the cortex–STN–GPe firing-rate model, with units.

The loop is the Wilson–Cowan-type model of Nevado-Holgado, Terry & Bogacz (2010), "Conditions
for the generation of beta oscillations in the subthalamic nucleus–globus pallidus network",
J. Neurosci. 30:12340–12352, extended with the cortical excitatory/inhibitory pair of Pavlides,
Hogan & Bogacz (2015), "Computational models describing possible mechanisms for generation of
excessive beta oscillations in Parkinson's disease", PLoS Comput. Biol. 11:e1004609 (fitted
parameter set of their Table 3, used below). The activation function is
``F(x) = M / (1 + (M - B) / B * exp(-4 x / M))`` with maximal rate ``M`` and baseline ``B``.

The parkinsonian regime strengthens the STN–GPe and cortex–STN couplings (dopamine loss,
Holgado 2010 §Results; Mallet et al. 2008); the healthy regime weakens them so the loop is
stable and beta is small. Strength–duration constants follow Holsheimer et al. (2000),
"Identification of the target neuronal elements in electrical deep brain stimulation",
Eur. J. Neurosci. 12:4573–4577 (chronaxies 30–200 µs), and current–distance relations of
McIntyre et al. (2004), J. Neurophysiol. 91:1457–1469. The stimulation mechanism (depressing
afferent synapses, frequency-dependent informational lesion of the STN output) and its sources
are described in :mod:`simulators.bg_beta.kernel`.
"""

from __future__ import annotations

# --- time constants, s ------------------------------------------------------------------------
TAU_S = 12.8e-3      # STN
TAU_G = 20.0e-3      # GPe
TAU_E = 11.59e-3     # cortical excitatory population
TAU_I = 13.02e-3     # cortical inhibitory population

# --- transmission delays, s (rounded to whole samples by the kernel) ----------------------------
T_SG = 6.0e-3        # STN -> GPe
T_GS = 6.0e-3        # GPe -> STN
T_GG = 4.0e-3        # GPe -> GPe
T_CS = 5.5e-3        # cortex -> STN (hyperdirect)
T_SC = 21.5e-3       # STN -> cortex (via GPi/thalamus)
T_CC = 4.65e-3       # within cortex

# --- activation functions: maximal and baseline rates, spikes/s ---------------------------------
M_S, B_S = 300.0, 10.0
M_G, B_G = 400.0, 20.0
M_E, B_E = 75.77, 17.85
M_I, B_I = 205.72, 9.87

# --- external inputs, spikes/s --------------------------------------------------------------------
C_IN = 172.18        # tonic input to cortex
STR_IN = 8.46        # striatal inhibition of GPe

# --- synaptic weights (dimensionless), parkinsonian fit of Pavlides 2015 ----------------------------
W_GS = 1.33          # GPe -| STN
W_SG = 4.87          # STN -> GPe
W_GG = 0.53          # GPe -| GPe
W_CS = 9.97          # cortex -> STN
W_SC = 8.93          # STN -| cortex (net effect through GPi and thalamus)
W_CC = 6.17          # cortex E <-> I

# --- regimes ------------------------------------------------------------------------------------
HEALTHY_SCALE = 0.55   # multiplies W_GS, W_SG and W_CS in the healthy regime
LOOP_SCALE = (1.0, 0.8, 0.6)  # motor, associative, limbic territory: pathological coupling scale

# --- noise --------------------------------------------------------------------------------------
NOISE_C_HZ = 40.0      # s.d. of the cortical input noise, spikes/s per sample at 1 kHz
NOISE_S_HZ = 8.0       # s.d. of the STN input noise, spikes/s per sample at 1 kHz

# --- electrical stimulation of STN -------------------------------------------------------------
TAU_STIM = 8.0e-3      # synaptic/membrane filter of the pulse-evoked afferent input, s
STIM_KICK = 1.5        # STN input (spikes/s · s) per pulse to a fully recruited population, fresh synapses
SYN_USE = 0.4          # fraction of afferent synaptic resources used per pulse (Tsodyks & Markram 1997)
SYN_TAU_REC = 0.25     # recovery of afferent resources, s (Rosenbaum et al. 2014: depression at >= 100 Hz)
T50_BLOCK = 1.0 / 75.0  # median post-pulse recovery time of STN neurons, s: half-block at 75 Hz
BLOCK_SPREAD = 0.35    # log-normal spread of recovery times (block 0.8 at 100 Hz, 0.94 at 130 Hz)
TAU_RATE = 50.0e-3     # time constant of the pulse-rate tracker that sets the blocked fraction, s
S_TONIC = 15.0         # pulse-locked STN output through depressed efferent synapses, spikes/s
RHEOBASE_MA = 0.35     # rheobase at 0 mm, mA
CHRONAXIE_US = 75.0    # chronaxie of the therapeutic elements, µs (Holsheimer 2000)
DISTANCE_K_MA_PER_MM2 = 0.08   # current–distance constant, mA/mm²
RECRUIT_WIDTH = 0.25   # log-scale spread of thresholds in the population

# --- side effect (internal capsule) ---------------------------------------------------------------
IC_RHEOBASE_MA = 0.5   # capsule fibre rheobase at 0 mm, mA
IC_CHRONAXIE_US = 120.0  # capsule chronaxie, µs (large myelinated fibres in Holsheimer's range)
IC_DISTANCE_K = 0.08   # mA/mm²
SIDE_EFFECT_REPORT = 0.5   # recruitment of capsule fibres at which the patient reports a side effect

# --- bg-beta-v1: slow loop-gain modulation (beta bursts of physiological duration) ------------------
# Parkinsonian STN beta bursts last 100 ms to > 1 s (median a few hundred ms at the 75th-percentile
# threshold) and grow in amplitude with duration (Tinkhauser et al. 2017, Brain 140:1053–1067 and
# 140:2968–2981). In v1 they come from slow (0.1–2 Hz) Ornstein–Uhlenbeck fluctuations of each
# loop's gain that carry it back and forth across its Hopf bifurcation (Duchet et al. 2021, PLoS
# Comput. Biol. 17:e1009116; Cagnan et al. 2019, PNAS 116:16095–16104; West et al. 2023, Prog.
# Neurobiol. 221:102397); the fast input noise is lowered so it no longer chops the bursts. The loop
# scale below multiplies W_GS, W_SG and W_CS as LOOP_SCALE does in v0; with Pavlides' weights the
# motor loop's Hopf point lies near a scale of 0.33 (found by continuation, noise off).
V1_LOOP_SCALE = (0.6, 0.35, 0.25)     # motor, associative, limbic: mean pathological coupling scale
V1_HEALTHY_SCALE = 0.25               # healthy: below the Hopf point even at +1 s.d. of gain
V1_GAIN_SD = 0.3                      # s.d. of the log loop gain m (dimensionless)
V1_GAIN_TAU_S = 0.3                   # OU time constant of m, s (corner 1/(2π τ) ≈ 0.5 Hz: 0.1–2 Hz fluctuations)
V1_NOISE_SCALE = 0.5                  # multiplies NOISE_C_HZ and NOISE_S_HZ
V1_T_SC_FACTOR = (0.4, 0.7)           # range of T_SC factors: shorter cortical return loop: beta peak ≈ 14–15 Hz

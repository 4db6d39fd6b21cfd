"""Default parameters of the Stuart–Landau (Hopf) whole-brain network, with units and sources.

Each node is the normal form of a supercritical Hopf bifurcation (Stuart–Landau oscillator),
``dz/dt = (a + iω) z − |z|² z + G Σ_j C_ij (z_j − z_i) + σ ξ(t)``, as in the whole-brain
Hopf model of Deco, Kringelbach, Jirsa & Ritter (2017), "The dynamics of resting fluctuations in
the brain: metastability and its dynamical cortical core", Sci. Rep. 7:3095, run at the
frequencies of electrophysiology as in Deco, Cabral, Woolrich, Stevner, van Hartevelt &
Kringelbach (2017), "Single or multiple frequency generators in on-going brain activity: a
mechanistic whole-brain model of empirical MEG data", NeuroImage 152:538–550. ``a < 0``: noisy
damped oscillation (a spectral peak of half-width ``|a| / 2π`` Hz); ``a > 0``: a limit cycle of
radius ``√a``.

Units: time in s, so ``a``, ``ω``, ``G`` are in 1/s (rad/s for ``ω``); ``z`` is dimensionless
(a node's healthy fluctuation has s.d. ≈ 1) and becomes µV through the source gain.

The node's amplitude equation is read as the Ott–Antonsen mean field of a population of coupled
phase oscillators (Ott & Antonsen 2008, Chaos 18:037113): with Lorentzian natural frequencies of
half-width ``Δ`` and coupling ``K``, the order parameter obeys a Stuart–Landau equation with
``a = K/2 − Δ``. This fixes how stimulation desynchronizes a node (see :mod:`.kernel`).
"""

from __future__ import annotations

# --- anatomy -------------------------------------------------------------------------------------
HEAD_RADIUS_MM = 70.0        # radius of the cortical surface sphere, mm
NODES_PER_HEMISPHERE = (8, 16)  # range of parcels per hemisphere (whole network: 16–32 nodes)
SOURCE_DEPTH_MM = 3.0        # depth of a parcel's generator below the cortical surface, mm

# --- structural connectivity: exponential distance rule ----------------------------------------------
# Ercsey-Ravasz et al. (2013), "A predictive network model of cerebral cortical connectivity based
# on a distance rule", Neuron 80:184–197: connection probability and weight decay as exp(-λ d)
# (λ ≈ 0.19 /mm in macaque; scaled to the human brain's ~2.5× larger linear size). Weights are
# log-normally spread over orders of magnitude (Markov et al. 2014, Cereb. Cortex 24:17–36).
EDR_LENGTH_MM = 25.0         # 1/λ of the weight decay, mm (drawn ×0.8–1.2 per patient)
EDR_P0 = 1.0                 # connection probability at distance 0 (probability exp(-d / EDR_P_LENGTH_MM))
EDR_P_LENGTH_MM = 45.0       # space constant of the connection probability, mm
LONG_RANGE_P = 0.04          # extra random long-range (small-world) edges, probability per pair
WEIGHT_LOG_SD = 0.6          # s.d. of the log-normal weight spread
HOMOTOPIC_WEIGHT = 0.6       # homotopic inter-hemispheric link, fraction of the largest weight
                             # (callosal homotopic links are among the strongest: Shen et al. 2015)

# --- node dynamics ------------------------------------------------------------------------------------
# Healthy nodes sit below the bifurcation (Deco et al. 2017: best fits with a slightly negative).
A_HEALTHY = (-14.0, -4.0)    # bifurcation parameter of healthy nodes, 1/s (uniform range)
A_PATHOLOGICAL = (15.0, 30.0)  # bifurcation parameter of the pathological generator, 1/s
A_REGION_HEALTHY = (-8.0, -4.0)  # the same generator in the healthy twin, 1/s
# Node frequencies, Hz: posterior/lateral alpha (Berger 1929; Deco et al. 2017 NeuroImage fit
# node peaks in 8–13 Hz from MEG) and rolandic beta (Salmelin & Hari 1994, Neuroscience
# 60:537–550: ~20 Hz sensorimotor rhythm).
F_ALPHA_HZ = (8.0, 12.0)
F_BETA_HZ = (15.0, 24.0)
CENTRAL_STRIP_MM = 22.0      # |y| below which a dorsal node is sensorimotor (beta), mm
F_REGION_HZ = (17.0, 25.0)   # pathological generator: exaggerated sensorimotor beta (de Hemptinne et al.
                             # 2013, PNAS 110:4780–4785: excessive M1 beta synchrony in Parkinson's ECoG)
DELTA_HZ = (1.5, 3.0)        # half-width of the node's population frequency spread Δ/2π, Hz (OA reading)
NOISE_SD = 4.0               # σ, process noise per √s on each of Re z, Im z (s.d. ≈ σ/√(2|a|) when a < 0)
COUPLING_G = (2.0, 5.0)      # global coupling G, 1/s (structural matrix normalised to mean row sum 1)
APERIODIC_TAU_S = (0.010, 0.020)  # time constant of each node's aperiodic (Lorentzian) component, s
APERIODIC_GAIN = 0.6         # its weight in the node's field potential relative to Re z

# --- electrical stimulation ------------------------------------------------------------------------------
PULSE_KICK = 0.8             # jump of Re z per pulse at full recruitment (phase reset of the population)
T50_DESYNC_S = 1.0 / 70.0    # median recovery time of the recruited neurons: half of them pulse-locked at 70 Hz
DESYNC_SPREAD = 0.35         # log-normal spread of the recovery times
TAU_RATE_S = 0.04            # time constant of the pulse-rate tracker, s
RHEOBASE_MA = 0.3            # rheobase of cortical elements at 0 mm from a surface contact, mA
CHRONAXIE_US = 200.0         # chronaxie of cortical neurons, µs (Ranck 1975: 200–700 µs for somata)
DISTANCE_K_MA_PER_MM2 = 0.03  # current–distance constant, mA/mm² (cortical surface stimulation:
                              # thresholds of a few mA at ~5 mm, as in clinical ECoG mapping at 1–10 mA)
RECRUIT_WIDTH = 0.3          # log-scale spread of thresholds in the population
CONTACT_AREA_CM2 = 0.0415    # exposed disc of a 2.3 mm subdural grid electrode, cm²
GRID_PITCH_MM = 10.0         # inter-electrode distance of a clinical ECoG grid, mm

# --- side effect: corticospinal (motor) response --------------------------------------------------------
# Surface stimulation over the motor strip evokes contralateral muscle twitches once corticospinal
# output is recruited (Penfield & Boldrey 1937; motor thresholds of a few mA in ECoG mapping).
MOTOR_OFFSET_MM = (5.0, 11.0)   # distance of the corticospinal hot spot from the generator, mm
CS_RHEOBASE_MA = 0.25        # mA
CS_CHRONAXIE_US = 150.0      # µs (large pyramidal axons: shorter chronaxie than somata)
CS_DISTANCE_K = 0.04         # mA/mm²
SIDE_EFFECT_REPORT = 0.5     # corticospinal recruitment at which a twitch is reported

# --- observation ----------------------------------------------------------------------------------------
SOURCE_GAIN_UV = 45.0        # potential at 0 mm per unit of node activity, µV

# --- sensory drive ----------------------------------------------------------------------------------------
FLICKER_DRIVE = 60.0         # forcing of Re z in the occipital nodes during flicker ON at full contrast, 1/s
                             # (steady-state visual evoked responses: Herrmann 2001, Exp. Brain Res. 137:346–353)

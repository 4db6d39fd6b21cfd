"""Default parameters of the Wilson–Cowan cortical sheet, with units and sources.

Each column is the Wilson–Cowan excitatory–inhibitory pair (Wilson & Cowan 1972, "Excitatory and
inhibitory interactions in localized populations of model neurons", Biophys. J. 12:1–24) in the
form and with the default constants of neurolib (Cakan, Jajcay & Obermayer 2021, "neurolib: a
simulation framework for whole-brain neural mass modeling", Cogn. Comput. 15:1132–1152):

``τ_E dE/dt = −E + (1 − E) S_E(c_EE E − c_IE I + P + K Σ_j C_ij E_j + u_E + σ ξ)``
``τ_I dI/dt = −I + (1 − I) S_I(c_EI E − c_II I + Q + u_I)``, ``S(x) = 1 / (1 + exp(−a (x − μ)))``.

E and I are fractions of active cells (dimensionless, 0–1); inputs are in the units of the
sigmoid's argument. The E–I loop oscillates (pyramidal–interneuron gamma, PING: Whittington et
al. 2000, Int. J. Psychophysiol. 38:315–336; Tiesinga & Sejnowski 2009, Neuron 63:727–732) for
excitatory drive ``P`` between two Hopf bifurcations (Borisyuk & Kirillov 1992, Biol. Cybern.
66:319–325); neurolib's time constants (2.5 / 3.75 ms) give 55–65 Hz there, scaled here ×1.3–1.7
for 35–50 Hz gamma. Healthy columns sit just below the lower Hopf point: noise-driven, bursty gamma
(Xing et al. 2012, J. Neurosci. 32:13873–13880: stochastic gamma in V1) that a visual stimulus
turns into a stimulus-induced gamma rhythm (Gray & Singer 1989, PNAS 86:1698–1702), with
steady-state responses to flicker and clicks.

Pathological regime: a hyperexcitable focus (raised excitatory drive past the Hopf point) with a
sustained, high-amplitude gamma rhythm that spreads to its neighbours — focal fast activity of
neocortical epilepsy (Worrell et al. 2004, Brain 127:1496–1506).
"""

from __future__ import annotations

# --- one column (neurolib WC defaults; Wilson & Cowan 1972) ------------------------------------------
TAU_E_S = 2.5e-3        # excitatory time constant, s (scaled per patient by TAU_SCALE)
TAU_I_S = 3.75e-3       # inhibitory time constant, s
TAU_SCALE = (1.3, 1.7)  # patient-specific slowing: gamma at 35–50 Hz
C_EE = 16.0             # E -> E coupling (dimensionless)
C_IE = 12.0             # I -> E coupling
C_EI = 15.0             # E -> I coupling
C_II = 3.0              # I -> I coupling
A_E, MU_E = 1.5, 3.0    # slope and threshold of the excitatory sigmoid
A_I, MU_I = 1.5, 3.0    # slope and threshold of the inhibitory sigmoid
Q_TONIC = 0.0           # tonic input to inhibitory cells

# --- regimes ---------------------------------------------------------------------------------------------
P_HEALTHY = (0.50, 0.65)   # excitatory drive of healthy columns (lower Hopf point ≈ 0.8 at the default τ)
P_FOCUS = (1.2, 1.8)       # drive of the hyperexcitable focus (inside the limit-cycle range 0.8–2.6)
FOCUS_SIZE = (2, 4)        # columns in the focus (nearest the focus point)
NOISE_SD = 0.3             # s.d. of the excitatory input noise per 1 ms sample

# --- sheet ------------------------------------------------------------------------------------------------
SHEETS = ((4, 4), (4, 5), (4, 6), (5, 6), (4, 8))  # columns per side (rows, cols)
COLUMN_SPACING_MM = 6.0    # distance between neighbouring columns, mm
COUPLING_LENGTH_MM = 5.0   # space constant of horizontal excitatory connections, mm (a few mm:
                           # Stepanyants et al. 2009, Cereb. Cortex 19:1402–1413)
COUPLING_K = (0.8, 1.4)    # lateral E -> E coupling gain (weights row-normalised)
HEAD_RADIUS_MM = 70.0      # cortical sphere radius, mm
SOURCE_DEPTH_MM = 2.0      # depth of a column's current dipole below the surface, mm

# --- integration ----------------------------------------------------------------------------------------
SUBSTEPS = 2               # explicit-midpoint (RK2) sub-steps per 1 ms sample (h = 0.5 ms ≤ τ_E / 6.5)

# --- sensory drive ------------------------------------------------------------------------------------------
FLICKER_GAIN = 1.0         # extra excitatory drive to visual columns in flicker ON phases at full contrast
CLICK_KICK = 0.35          # thalamocortical volley per click at full level, fraction of full recruitment

# --- electrical stimulation ------------------------------------------------------------------------------------
# Pulses excite the afferent axons of recruited columns: excitatory input to E and, through feed-forward
# and direct recruitment of interneurons, to I (Schiller & Bankirer 2007, J. Neurophysiol. 97:1887–1902:
# HFS of neocortex recruits GABAergic inhibition that suppresses epileptiform activity). A ≥ 100 Hz
# train adds a tonic input to I that moves a column out of the oscillatory range (Borisyuk & Kirillov
# 1992); 20–40 Hz trains evoke phasic responses but leave the focus oscillating.
KICK_E = 1.2               # jump of u_E per pulse at full recruitment
KICK_I = 3.0               # jump of u_I per pulse at full recruitment
TAU_SYN_S = 5.0e-3         # decay of the pulse-evoked synaptic input, s
RHEOBASE_MA = 0.3          # mA, at 0 mm
CHRONAXIE_US = 200.0       # µs (Ranck 1975)
DISTANCE_K_MA_PER_MM2 = 0.03  # mA/mm²
RECRUIT_WIDTH = 0.3
CONTACT_AREA_CM2 = 0.0415  # 2.3 mm exposed subdural disc, cm²
GRID_PITCH_MM = 5.0        # high-density ECoG grid pitch, mm

# --- side effect: afterdischarges --------------------------------------------------------------------------------
# Cortical stimulation can evoke afterdischarges, at 1–15 mA for 0.3 ms pulses, with lower thresholds
# over hyperexcitable cortex (Lesser et al. 1984, Neurology 34:1295; Blume et al. 2004, Clin.
# Neurophysiol. 115:982–989). The focus is where suppression works best and where ADs start first.
AD_RHEOBASE_MA = 1.2       # mA at 0 mm from the focus
AD_CHRONAXIE_US = 200.0    # µs
AD_DISTANCE_K = 0.02       # mA/mm²
SIDE_EFFECT_REPORT = 0.5   # recruitment of the AD-prone population at which an afterdischarge is seen

# --- recorded source: synaptic currents onto the pyramidal (E) cells --------------------------------------------
# ECoG/LFP reflect transmembrane synaptic currents, not firing (Buzsáki, Anastassiou & Koch 2012, Nat. Rev.
# Neurosci. 13:407–420): the source of a column is I_AMPA + I_GABA, its E cells' excitatory input (c_EE E + lateral +
# afferent) and inhibitory input (c_IE I) convolved with unit-area difference-of-exponentials kernels with the
# AMPA and GABA_A time constants of Gao, Peterson & Voytek 2017 (NeuroImage 158:70–78), summed in magnitude as in
# Mazzoni et al. 2008 (PLoS Comput. Biol. 4:e1000239). Firing-fraction sources (the previous readout) have a flat
# spectrum below gamma; the GABA_A decay gives the 1/f² fall above ~16 Hz of a synaptic current.
TAU_AMPA_RISE_S = 0.1e-3   # s
TAU_AMPA_DECAY_S = 2.0e-3  # s
TAU_GABA_RISE_S = 0.5e-3   # s
TAU_GABA_DECAY_S = 10.0e-3  # s

# --- observation ------------------------------------------------------------------------------------------------
# potential at 0 mm per unit of synaptic current (units of the sigmoid argument), µV: set so that healthy ECoG keeps
# the broadband amplitude of the former firing-fraction readout (150 µV per unit E; healthy source s.d. 0.74 units
# of current vs 0.041 of E, training seeds 1–8)
SOURCE_GAIN_UV = 8.0

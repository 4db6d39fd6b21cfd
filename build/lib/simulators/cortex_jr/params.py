"""Default parameters of the Jansen–Rit cortical column and its network, with units.

Values follow Jansen & Rit (1995), "Electroencephalogram and visual evoked potential generation
in a mathematical model of coupled cortical columns", Biol. Cybern. 73:357–366 (Table 1), with
the epileptiform regime obtained by raising the excitatory synaptic gain ``A`` as in
Wendling et al. (2000), "Relevance of nonlinear lumped-parameter models in the analysis of
depth-EEG epileptic signals", Biol. Cybern. 83:367–378, and distance-dependent coupling of
columns as in David & Friston (2003), NeuroImage 20:1743–1755.
"""

from __future__ import annotations

# --- one column (Jansen & Rit 1995) ---------------------------------------------------------
A_MV = 3.25          # excitatory synaptic gain, mV
B_MV = 22.0          # inhibitory synaptic gain, mV
A_RATE = 100.0       # excitatory synaptic rate constant a = 1/tau_e, 1/s
B_RATE = 50.0        # inhibitory synaptic rate constant b = 1/tau_i, 1/s
C_CONN = 135.0       # average number of synapses between populations (C1..C4 are fractions)
C1_FRAC = 1.0        # pyramidal -> excitatory interneurons
C2_FRAC = 0.8        # excitatory interneurons -> pyramidal
C3_FRAC = 0.25       # pyramidal -> inhibitory interneurons
C4_FRAC = 0.25       # inhibitory interneurons -> pyramidal
E0_HZ = 2.5          # half the maximal firing rate of the sigmoid, 1/s
V0_MV = 6.0          # firing threshold (sigmoid midpoint), mV
R_PER_MV = 0.56      # sigmoid steepness, 1/mV
P_MEAN_HZ = 220.0    # mean extrinsic input, pulses/s (JR95: uniform 120–320)
P_SD_HZ = 30.0       # s.d. of the extrinsic input, pulses/s per sample at 1 kHz

# --- regimes --------------------------------------------------------------------------------
A_EPILEPTIC_MV = 4.0     # raised excitatory gain in the epileptogenic nodes, mV (Wendling 2000)
EPILEPTIC_FRACTION = 0.4 # fraction of nodes with raised excitability in the pathological regime

# --- network (David & Friston 2003 style) ---------------------------------------------------
COUPLING_GAIN = 12.0     # global coupling, pulses/s of input per (1/s) of afferent firing
COUPLING_LENGTH_MM = 30.0  # space constant of exp(-d / lambda) coupling, mm
HEAD_RADIUS_MM = 75.0    # radius of the cortical surface sphere, mm

# --- sensory drive ---------------------------------------------------------------------------
FLICKER_GAIN_HZ = 160.0  # extra input to visual nodes at full contrast during the ON phase, pulses/s
CLICK_KICK = 0.35        # input delivered to auditory nodes per click at full level, pulses (area)

# --- electrical stimulation --------------------------------------------------------------------
STIM_KICK = 0.6          # input area delivered to a fully recruited column per pulse, pulses
RHEOBASE_MA = 0.4        # rheobase at the contact (distance 0), mA
CHRONAXIE_US = 250.0     # chronaxie of cortical neurons, µs (order of Ranck 1975; 200–700 µs)
DISTANCE_K_MA_PER_MM2 = 0.12  # current–distance constant, I_th(r) = I_rh (1 + r^2 k / I_rh), mA/mm²
P_EPILEPTIC_HZ = 135.0   # mean extrinsic input to epileptogenic nodes, pulses/s

# --- observation ---------------------------------------------------------------------------------
SOURCE_GAIN_UV_PER_MV = 25.0  # potential at 0 mm per mV of pyramidal membrane potential, µV/mV

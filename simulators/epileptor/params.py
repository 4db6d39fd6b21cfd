"""Default parameters of the Epileptor network, with units and sources.

The node is the six-dimensional Epileptor of Jirsa, Stacey, Quilichini, Ivanov & Bernard (2014),
"On the nature of seizure dynamics", Brain 137:2210–2230 (equations and parameter values of
their Appendix/Table 1, as implemented in The Virtual Brain's ``Epileptor``: Sanz Leon et al.
2013, Front. Neuroinform. 7:10). The Epileptor is written in dimensionless model time; the
mapping of one model time unit to seconds is ours (``TIME_UNIT_S``, below). Nodes are coupled
through the slow permittivity variable ``z`` by the linear difference coupling of Proix, Bartolomei,
Chauvel, Bernard & Jirsa (2014), "Permittivity coupling across brain regions determines seizure
recruitment in partial epilepsy", J. Neurosci. 34:15009–15021, with the epileptogenic (EZ),
propagation (PZ) and healthy zones defined by the excitability ``x0`` as in that paper and in
Jirsa et al. (2017), "The Virtual Epileptic Patient", NeuroImage 145:377–388.

Variables are dimensionless unless a unit is given.
"""

from __future__ import annotations

# --- one Epileptor (Jirsa et al. 2014, Table 1; TVB defaults) -------------------------------------
IREST1 = 3.1         # I_rest1, constant input to the fast subsystem (x1, y1)
IREST2 = 0.45        # I_rest2, constant input to the spike-wave subsystem (x2, y2)
Y0 = 1.0             # y0 (TVB ``c``), offset of the y1 equation
D_Y1 = 5.0           # TVB ``d``: y1' = y0 - d x1² - y1
A_F1, B_F1 = 1.0, 3.0  # f1(x1 < 0) = a x1³ - b x1²
SLOPE = 0.0          # TVB ``slope``: f1(x1 >= 0) = -(slope - x2 + 0.6 (z - 4)²) x1
TAU2 = 10.0          # τ2, time constant of y2 (spike-wave subsystem), model time units
AA_F2 = 6.0          # f2(x2) = aa (x2 + 0.25) for x2 >= -0.25
BB_G = 2.0           # weight of the low-pass feedback g(x1) onto x2
GAMMA = 0.01         # γ, rate of the low-pass filter g, 1 / model time unit
S_Z = 4.0            # s, gain of x1 in the slow equation z' = r (s (x1 - x0) - z)
R_SLOW = 0.00035     # r = 1/τ0 (τ0 = 2857), slow time scale, 1 / model time unit (Jirsa 2014)

# --- excitability (Proix 2014; Jirsa 2017) --------------------------------------------------------
X0_CRITICAL = -2.06  # bifurcation value of x0 (this linear-z Epileptor, isolated node); above: seizures
X0_EZ = (-1.85, -1.55)     # epileptogenic zone, uniform range (seizes on its own)
X0_PZ = (-2.25, -2.12)     # propagation zone, just below critical (recruited through coupling)
X0_HEALTHY = (-2.90, -2.40)  # healthy nodes, and every node of the healthy twin
EZ_NODES = (1, 3)          # number of EZ nodes, inclusive range
PZ_RADIUS_MM = 22.0        # nodes within this distance of the EZ centre form the propagation zone

# --- network (Proix 2014 permittivity coupling) ---------------------------------------------------
# z_i' = r (s (x1_i - x0_i) - z_i - K Σ_j W_ij (x1_j - x1_i)), W row-normalised exp(-d / λ)
COUPLING_K = 2.0           # K, global coupling (drawn ×[0.75, 1.25] per patient)
COUPLING_LENGTH_MM = 15.0  # λ, space constant of the connectivity, mm
REGION_RADIUS_MM = 35.0    # nodes (brain regions) lie in a ball of this radius around the explored lobe, mm

# --- time scaling (ours; documented in the package docstring) ------------------------------------
# One model time unit lasts TIME_UNIT_S: the fast discharge of x1 (≈ 0.2 cycles / unit) then falls at
# ≈ 17–25 Hz and the spike-wave events of x2 (≈ 0.03–0.06 / unit) at ≈ 3–6 Hz, the ranges of
# ictal sEEG (fast onset activity in beta/low gamma, rhythmic 3–8 Hz discharges later; Bartolomei,
# Chauvel & Wendling 2008, Brain 131:1818–1830). The slow rate r is scaled down so that seizures last
# ~10–25 s and recur after ~10–30 s, i.e. spontaneous onset and offset within tens of seconds.
TIME_UNIT_S = 0.010        # s per model time unit (drawn ×[0.85, 1.15] per patient)
R_SCALE = (0.25, 0.45)     # multiplies R_SLOW, uniform range per patient

# --- noise (additive, per sqrt(model time unit), on x1 and x2; TVB demos put nsig ≈ 0.003, i.e.
# σ = sqrt(2 nsig) ≈ 0.08, on x1, y1, x2, y2: we use less, so healthy regions rarely spike) ---------
SIGMA_FAST = 0.025         # σ on x1
SIGMA_SW = 0.035           # σ on x2

# --- electrical stimulation ------------------------------------------------------------------------
# A pulse delivers a brief depolarising current to the recruited fraction ρ of a node (a jump of x1,
# the variable where TVB's stimuli enter the Epileptor) and activates local GABAergic terminals:
# the synaptic activation s jumps by κ ρ (1 - s) and decays with τ_s, and I = -I_MAX s enters the x1
# equation. A sustained I < 0 is equivalent to raising z (x1' contains -z + I), so a train long and
# strong enough pushes the fast subsystem past the homoclinic (offset) bifurcation and the seizure
# stops; afterwards the node sits in the bistable range, on the interictal side of the separatrix
# (Jirsa 2014), and stays there until z drifts back to onset. The effect is graded with the rate
# (s ≈ κ ρ f τ_s / (1 + κ ρ f τ_s)) and charge (ρ): high-frequency trains abort seizures, low rates
# mostly evoke responses. Single-pulse abatement of bistable seizures: Taylor et al. (2014),
# PLoS ONE 9:e114316; GABAergic mechanism of stimulation in neural masses: Mina et al. (2013),
# Front. Comput. Neurosci. 7:94.
STIM_KICK_X1 = 0.25        # x1 jump per pulse at full recruitment
STIM_KAPPA = 0.3           # fraction of the remaining GABAergic activation recruited per pulse
STIM_TAU_S = 0.050         # τ_s, decay of the stimulation-evoked inhibition, s (GABA_A/B mixture)
STIM_I_MAX = 2.2           # I_MAX, inhibitory current onto x1 at full activation (units of z)
RHEOBASE_MA = 0.5          # rheobase at the contact (distance 0), mA (cortical sEEG, order of Ranck 1975)
CHRONAXIE_US = 300.0       # chronaxie of cortical neurons, µs (Ranck 1975: 200–700 µs for somata)
DISTANCE_K_MA_PER_MM2 = 0.10  # current–distance constant, mA/mm² (Ranck 1975; Nathan et al. 1993)
REGION_CORE_MM = 4.0       # a region is a patch of grey matter: current–distance counts from this radius
                           # around its centre (a contact inside the patch recruits it at distance 0)

# --- side effect (functional response of eloquent cortex, as in sEEG stimulation mapping) ----------
# Stimulation near eloquent cortex evokes a sensory/motor response (paresthesia, twitch); the
# structure lies at a patient-specific distance from the shaft (Trébuchon & Chauvel 2016,
# J. Clin. Neurophysiol. 33:511–521).
ELOQUENT_DISTANCE_MM = (3.0, 7.0)  # from the nearest stimulating contact, uniform range
ELOQUENT_RHEOBASE_MA = 0.3
ELOQUENT_CHRONAXIE_US = 150.0      # myelinated fibres: shorter chronaxie than somata
ELOQUENT_DISTANCE_K = 0.12         # mA/mm²
SIDE_EFFECT_REPORT = 0.3           # reported once the recruited fraction exceeds this

# --- observation -----------------------------------------------------------------------------------
HIGHPASS_TAU_S = 1.0       # AC coupling of the sEEG amplifier, s (first order: corner 0.16 Hz)
SOURCE_GAIN_UV = 400.0     # potential at 0 mm per unit of the LFP proxy x2 - x1, µV (ictal sEEG ≈ 0.5–2 mV)

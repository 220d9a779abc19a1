"""Kernel parameter bundles: the resolved scenario in kernel units (minutes, lattice sites, ng/mL)."""
from collections import namedtuple

# Field order in the field arrays; the model and kernels both use these constants.
IFNG, TGFB, IL15 = 0, 1, 2
FIELD_NAMES = ("ifng", "tgfb", "il15")

NKParams = namedtuple(
    "NKParams",
    [
        "dt", "dims", "sites_per_step", "persistence_min", "tumor_bias",
        "car_expression", "car_affinity", "nkg2d", "inhibitory", "cd16", "inhibitory_block",
        "attach_rate", "half_activation", "hill", "release_min",
        "perforin", "kill_min", "max_granules", "regen_min", "dr_kill_min", "dr_capacity", "exhaustion_stims",
        "half_life_min", "il15_extension", "il15_ec50", "prolif_rate", "max_divisions",
        "ifng_rate", "ifng_exhausted_fraction", "il15_rate", "il15_autocrine",
        "tgfb_ic50", "tgfb_activation_max", "tgfb_nkg2d_max", "tgfb_ifng_max", "tgfb_resistant",
        "mhc_max_fold", "tumor_ifng_ec50", "apoptosis_delay_min",
        "stim_division_prob", "memory_fraction", "memory_half_life_min", "rejection_per_min",
        "exhausted_half_life_factor", "aicd_per_trigger",
        "immune_cap",  # volume exclusion: immune cells one site holds (nk.crowding, lattice.immune_can_enter)
        "responsiveness_sd",  # per-cell intrinsic responsiveness: log-SD of its lognormal (recognition.intrinsic_responsiveness)
        "egress_per_min",  # recirculation: free cells leave the tumor bed back to blood (dosing.blood.return_half_life_h)
    ],
)

TumorParams = namedtuple(
    "TumorParams",
    ["division_rate", "death_rate", "ifng_growth_max", "ifng_ec50", "apoptosis_delay_min", "clearance_min", "antigen_loss",
     # expression noise with memory on division (kernels/noise.py): per-division correlation, the log-SD
     # of antigen around its clone's level, the population's log-mean and log-SD of MHC-I and NKG2D ligand
     "expression_rho", "antigen_log_sd", "mhc_log_mean", "mhc_log_sd", "ligand_log_mean", "ligand_log_sd",
     "open_boundary"],  # an open section (domain.section.boundary): a daughter with no free neighbour leaves it
)

"""Drug effects applied to the cell arrays: a chemotherapy pulse on cycling tumor cells."""
from numba import njit

from .step import T_ALIVE, doom_tumor


@njit(cache=True)
def chemo_pulse(rng, now, kill_fraction, apoptosis_delay, t_used, t_state, t_timer, t_site, t_quiescent, alive_bits):
    """Doom each cycling (not contact-inhibited: `TumorPopulation.quiescent` 0) live tumor cell with `kill_fraction`."""
    killed = 0
    for i in range(t_used):
        if t_state[i] == T_ALIVE and t_quiescent[i] == 0 and rng.random() < kill_fraction:
            doom_tumor(i, now, apoptosis_delay, t_state, t_timer, t_site, alive_bits)
            killed += 1
    return killed

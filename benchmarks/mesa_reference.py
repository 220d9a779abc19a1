"""A plain-Mesa reference model of nksim's core rules, written the way a Mesa user would write it.

`CellAgent`s on an `OrthogonalMooreGrid`, `shuffle_do`, one Python object per cell and plain Python
rules, no NumPy in the loop. It does two jobs:

* the per-agent-step baseline of `benchmarks/run_all.py` (nksim's speed-up is quoted against it);
* the statistical-equivalence oracle of `tests/test_mesa_reference.py`: with the same rules it must
  give the same tumor and NK trajectories as the Numba kernels, in distribution.

The core rules (the kernel's, re-written independently from their descriptions, not imported):
tumor cells divide into a free Moore neighbour after exponential waiting times (quiescent when
boxed in, woken when a neighbour is cleared; both daughters' antigen, MHC-I and ligand levels drift back
toward their clone's and the population's distribution), die an apoptosis delay after a lethal hit and keep
their site until cleared; CAR-NK cells die with their in-vivo half-life (shortened once exhausted,
and by activation-induced death as a triggered conjugate completes), regenerate granules, make
a persistent random walk biased toward the tumor centroid (blocked by tumor cells), attach to a
neighbouring live tumor cell, trigger with a Hill function of the net CAR + NKG2D − KIR·MHC-I
signal times the cell's own responsiveness and kill after the granule (or death-receptor) contact time, and exhaust after a number
of triggers; a site holds one tumor cell or at most `nk.crowding` k NK cells (a hop into a full site
is refused like one into a tumor cell; an NK cell whose site a tumor daughter took steps aside into a
neighbour with room). Cytokine fields, IL-15 and drugs are not part of the reference: use it with
scenarios whose secretion is zero (`oracle_overrides()`), where nksim's fields stay at zero.
"""
from __future__ import annotations

import math

import mesa
from mesa.discrete_space import CellAgent, OrthogonalMooreGrid

ALIVE, DOOMED, DEAD = "alive", "doomed", "dead"
FREE, KILLING, BOUND = "free", "killing", "bound"


def oracle_overrides() -> dict:
    """Scenario overrides that switch off everything the reference does not model (fields, IL-15)."""
    return {
        "tumor.tgfb_secretion": 0.0,
        "nk.secretion.ifng_engaged": 0.0,
        "nk.il15.mode": "none",
        "fields.stroma.enabled": False,
    }


class RefTumorCell(CellAgent):
    """A tumor cell: divides into free neighbouring sites, dies after a lethal hit."""

    def __init__(self, model, cell, antigen, mhc, ligand, timer, clone):
        super().__init__(model)
        self.cell = cell
        self.antigen, self.mhc, self.ligand = antigen, mhc, ligand
        self.clone = clone  # antigen level of the cell's clone (0: antigen-negative clone)
        self.state = ALIVE
        self.timer = timer
        model.tumor_added(self)

    def step(self):
        """Called every tumor step: act if the next event (division, death, clearance) is due."""
        m = self.model
        if self.timer > m.horizon:
            return
        if self.state == ALIVE:
            free = [c for c in self.cell.neighborhood if not any(isinstance(a, RefTumorCell) for a in c.agents)]
            if not free:
                self.timer = math.inf  # contact-inhibited until a neighbour is cleared
                return
            target = self.random.choice(free)
            # both daughters' expression levels drift back toward the population (antigen: toward the clone)
            levels = [(m.noisy(self.antigen, m.log_mean(self.clone, m.ag_cv), m.ag_sd),
                       m.noisy(self.mhc, m.mhc_mu, m.mhc_sd), m.noisy(self.ligand, m.lig_mu, m.lig_sd)) for _ in range(2)]
            RefTumorCell(m, target, *levels[1], m.horizon + m.division_delay(), self.clone)
            self.antigen, self.mhc, self.ligand = levels[0]
            self.timer = m.horizon + m.division_delay()
        elif self.state == DOOMED:
            self.state = DEAD
            self.timer += m.clearance_min
            m.tumor_removed(self)
        else:  # dead: cleared, neighbours may divide again
            for c in self.cell.neighborhood:
                for a in c.agents:
                    if isinstance(a, RefTumorCell) and a.state == ALIVE and a.timer == math.inf:
                        a.timer = m.horizon + m.division_delay()
            self.remove()

    def doom(self, now):
        self.state = DOOMED
        self.timer = now + self.model.apoptosis_delay_min


class RefNKCell(CellAgent):
    """A CAR-NK cell: persistent biased walk, conjugates, serial killing, granules, half-life."""

    def __init__(self, model, cell, direction, car_level, responsiveness):
        super().__init__(model)
        self.cell = cell
        self.direction = direction
        self.car_level = car_level  # CAR surface level of this cell (0 for a CAR− cell of the product)
        self.responsiveness = responsiveness  # this cell's factor on the net signal
        self.state = FREE
        self.target = None
        self.timer = 0.0
        self.granules = model.cfg.nk.killing.granules
        self.dr_left = model.cfg.nk.killing.death_receptor_capacity
        self.stims = 0
        self.kills = 0

    def has_room(self, cell):
        """Volume exclusion: no tumor cell there and fewer than k NK cells."""
        agents = cell.agents
        return not any(isinstance(a, RefTumorCell) for a in agents) and sum(isinstance(a, RefNKCell) for a in agents) < self.model.cap

    def step(self):
        m, k = self.model, self.model.cfg.nk.killing
        if any(isinstance(a, RefTumorCell) for a in self.cell.agents):  # a tumor daughter took this site
            room = [c for c in self.cell.neighborhood if self.has_room(c)]
            if room:
                self.cell = self.random.choice(room)
        exhausted = self.stims >= k.exhaustion_stimulations
        if self.random.random() < (m.p_death_exhausted if exhausted else m.p_death):
            m.nk_deaths += 1
            self.remove()
            return
        self.granules = min(k.granules, self.granules + m.dt / (k.granule_regen_h * 60.0))
        if self.state != FREE:
            if m.now + m.dt >= self.timer:
                if self.state == KILLING and self.target.state == ALIVE:
                    self.target.doom(m.now + m.dt)
                    self.kills += 1
                    m.kills += 1
                killing = self.state == KILLING
                self.state, self.target = FREE, None
                aicd = m.cfg.nk.persistence.aicd_per_trigger
                if killing and aicd > 0 and self.random.random() < aicd:  # activation-induced death
                    m.nk_deaths += 1
                    self.remove()
            return
        live = [a for c in self.cell.neighborhood for a in c.agents if isinstance(a, RefTumorCell) and a.state == ALIVE]
        if live and self.random.random() < m.p_attach:
            self.conjugate(self.random.choice(live))
            return
        self.move()

    def conjugate(self, tumor):
        """Signal integration with one tumor cell; trigger a kill or stay bound for the release time."""
        m, cfg = self.model, self.model.cfg
        r, a, kl = cfg.nk.receptors, cfg.nk.activation, cfg.nk.killing
        net = (self.car_level * r.car_affinity * tumor.antigen + r.nkg2d * tumor.ligand - r.inhibitory * tumor.mhc) * self.responsiveness
        exhausted = self.stims >= kl.exhaustion_stimulations
        p = 0.0
        if net > 0 and not exhausted:
            x = (net / a.half_activation) ** a.hill
            p = x / (1 + x)
        path = "granule" if (kl.perforin and self.granules >= 1) else ("dr" if self.dr_left >= 1 else None)
        self.target = tumor
        if path is not None and self.random.random() < p:
            self.stims += 1
            self.state = KILLING
            if path == "granule":
                self.granules -= 1
                self.timer = m.now + kl.kill_time_min
            else:
                self.dr_left -= 1
                self.timer = m.now + kl.death_receptor_kill_time_min
        else:
            self.state = BOUND
            self.timer = m.now + a.release_min

    def move(self):
        """Turn with hazard 1/persistence, then hop along the direction blended with the tumor bearing."""
        m = self.model
        if self.random.random() < m.p_turn:
            self.direction = m.random_direction()
        hops = int(m.sites_per_step)
        if self.random.random() < m.sites_per_step - hops:
            hops += 1
        for _ in range(hops):
            x, y = self.cell.coordinate
            cx, cy = m.centroid()
            bx, by = cx - x, cy - y
            n = math.hypot(bx, by)
            bx, by = (bx / n, by / n) if n > 1e-9 else (0.0, 0.0)
            b = m.bias
            dx = (1 - b) * self.direction[0] + b * bx
            dy = (1 - b) * self.direction[1] + b * by
            big = max(abs(dx), abs(dy))
            if big < 1e-12:
                continue
            ox = (1 if dx > 0 else -1) if self.random.random() < abs(dx) / big else 0
            oy = (1 if dy > 0 else -1) if self.random.random() < abs(dy) / big else 0
            if ox == 0 and oy == 0:
                continue
            nx, ny = x + ox, y + oy
            if not (0 <= nx < m.width and 0 <= ny < m.height):
                self.direction = m.random_direction()
                break
            dest = m.grid[(nx, ny)]
            if not self.has_room(dest):
                self.direction = m.random_direction()
                break
            self.cell = dest


class MesaReference(mesa.Model):
    """The reference model on a 2D lattice; build it from an nksim model's initial state."""

    def __init__(self, nksim_model, seed: int = 0):
        super().__init__(rng=seed)
        src = nksim_model
        cfg = self.cfg = src.config
        if cfg.domain.dims != 2:
            raise ValueError("the Mesa reference is 2D")
        self.width, self.height = src.shape[0], src.shape[1]
        self.grid = OrthogonalMooreGrid((self.width, self.height), torus=False, random=self.random)
        self.dt = cfg.time.dt_min
        self.tumor_every = max(1, int(round(cfg.time.tumor_dt_min / self.dt)))
        self.now = 0.0
        self.horizon = 0.0
        self.division_rate = math.log(2.0) / (cfg.tumor.doubling_time_h * 60.0)
        self.apoptosis_delay_min = cfg.tumor.apoptosis_delay_min
        self.clearance_min = cfg.tumor.clearance_min
        self.p_death = 1 - math.exp(-math.log(2.0) / (cfg.nk.persistence.half_life_days * 1440.0) * self.dt)
        t_exh = cfg.nk.persistence.half_life_days * cfg.nk.persistence.exhausted_half_life_factor
        self.p_death_exhausted = 1 - math.exp(-math.log(2.0) / (t_exh * 1440.0) * self.dt)
        self.p_attach = 1 - math.exp(-cfg.nk.activation.attach_rate_per_min * self.dt)
        self.p_turn = 1 - math.exp(-self.dt / cfg.nk.motility.persistence_min)
        self.sites_per_step = cfg.nk.motility.speed_um_min * self.dt / cfg.domain.spacing_um
        self.bias = cfg.nk.motility.tumor_bias
        self.cap = cfg.nk.crowding.per_site(cfg.domain.spacing_um)
        g = cfg.tumor.expression_memory_generations  # expression memory: correlation e^(−1/g) per division
        self.rho = 1.0 if g is None else math.exp(-1.0 / g)
        self.ag_cv = cfg.tumor.antigen.cv
        self.ag_sd = math.sqrt(math.log(1 + self.ag_cv ** 2))
        self.mhc_mu, self.mhc_sd = self.log_mean(cfg.tumor.mhc_i.mean, cfg.tumor.mhc_i.cv), math.sqrt(math.log(1 + cfg.tumor.mhc_i.cv ** 2))
        self.lig_mu = self.log_mean(cfg.tumor.nkg2d_ligand.mean, cfg.tumor.nkg2d_ligand.cv)
        self.lig_sd = math.sqrt(math.log(1 + cfg.tumor.nkg2d_ligand.cv ** 2))
        self.n_tumor, self.sum_x, self.sum_y = 0, 0, 0
        self.kills = 0
        self.nk_deaths = 0
        t, nk = src.tumor, src.nk
        for i in range(t.used):
            if t.state[i] in (0, 1):  # alive or doomed at start: copy the initial tumor exactly
                x, y, _ = (int(v) for v in divmod_site(int(t.site[i]), src.shape))
                RefTumorCell(self, self.grid[(x, y)], float(t.antigen[i]), float(t.mhc[i]), float(t.ligand[i]), float(t.timer[i]),
                             float(t.ag_clone[i]))
        for i in range(nk.used):
            if nk.state[i] >= 0:
                x, y, _ = divmod_site(int(nk.site[i]), src.shape)
                car = float(nk.car[i]) if hasattr(nk, "car") else cfg.nk.receptors.car_expression
                RefNKCell(self, self.grid[(x, y)], (float(nk.direction[i, 0]), float(nk.direction[i, 1])), car, float(nk.resp[i]))

    # bookkeeping a Mesa user would keep for the centroid (the NK bias points at it)
    def tumor_added(self, a):
        x, y = a.cell.coordinate
        self.n_tumor += 1
        self.sum_x += x
        self.sum_y += y

    def tumor_removed(self, a):
        x, y = a.cell.coordinate
        self.n_tumor -= 1
        self.sum_x -= x
        self.sum_y -= y

    def centroid(self):
        if self.n_tumor <= 0:
            return (self.width - 1) / 2, (self.height - 1) / 2
        return self.sum_x / self.n_tumor, self.sum_y / self.n_tumor

    @staticmethod
    def log_mean(mean, cv):
        """Mean of ln(level) for a lognormal level with this mean and CV."""
        return math.log(mean) - 0.5 * math.log(1 + cv * cv) if mean > 0 else 0.0

    def noisy(self, level, mu, sd):
        """A daughter's level: ln level pulled toward mu with correlation rho, plus fresh noise."""
        if level <= 0 or self.rho >= 1.0:
            return level
        return math.exp(mu + self.rho * (math.log(level) - mu) + math.sqrt(1 - self.rho ** 2) * sd * self.random.gauss(0.0, 1.0))

    def division_delay(self):
        return self.random.expovariate(self.division_rate)

    def random_direction(self):
        a = self.random.uniform(0, 2 * math.pi)
        return (math.cos(a), math.sin(a))

    def step(self):
        self.agents_by_type[RefNKCell].shuffle_do("step") if RefNKCell in self.agents_by_type else None
        if self.steps % self.tumor_every == 0 and RefTumorCell in self.agents_by_type:
            self.horizon = self.now + self.dt
            self.agents_by_type[RefTumorCell].shuffle_do("step")
        self.now += self.dt

    # observables, named like nksim's time-series columns
    def tumor_count(self) -> int:
        return self.n_tumor

    def nk_live(self) -> int:
        return len(self.agents_by_type[RefNKCell]) if RefNKCell in self.agents_by_type else 0


def divmod_site(site: int, shape) -> tuple[int, int, int]:
    """(x, y, z) of a linear C-order site index."""
    nx, ny, nz = shape
    return site // (ny * nz), (site // nz) % ny, site % nz

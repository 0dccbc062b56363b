"""Small numpy neural networks on the density-expansion descriptors.

:class:`ResidualNetwork` (conservative)
    ``E = sum_i [e_lin(G_i) + MLP_{Z_i}((G_i - mu) / sigma)]``: a per-element two-layer
    tanh MLP learns the residual of the linear model.  Forces are the exact negative
    gradient: ``dE/dG`` from analytic backprop through the MLP, contracted with
    ``dG/dx`` by :meth:`DensityExpansion.vjp`.  Training on forces needs the gradient of
    a gradient; it is done with one forward-mode pass of the descriptor
    (:meth:`DensityExpansion.jvp` of the force-loss adjoint) and forward-over-reverse
    through the MLP (:meth:`MLP.backward` with a tangent), so no Jacobian is stored.

:class:`DirectForceModel` (not conservative)
    Forces predicted directly as ``F_i = sum_j s_ij r̂_ij`` with a pair MLP
    ``s_ij = f(x_i, x_j, R(r_ij)) fc(r_ij)`` on projected descriptors of both atoms:
    rotation-equivariant and smooth, but not the gradient of any energy and, because
    ``s_ij != s_ji``, without Newton's third law.  Training optionally penalises the net
    force and (for isolated structures) the net torque.  Energy and stress come from the
    linear model.  It exists to show what those penalties change and that only the
    conservative model passes force-consistency checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .descriptors import Descriptor, concatenate
from .linear import LinearModel
from .switching import quintic_switch

__all__ = ["MLP", "Adam", "ResidualNetwork", "DirectForceModel", "train_residual",
           "train_direct"]


class MLP:
    """Two-hidden-layer tanh perceptron ``x (N, D_in) -> e (N,)``.

    Parameters are a dict ``W1 (D_in, H), b1 (H), W2 (H, H), b2 (H), w3 (H), b3 ()``.
    """

    names = ("W1", "b1", "W2", "b2", "w3", "b3")

    @staticmethod
    def init(n_in: int, n_hidden: int, rng, zero_output: bool = True) -> dict:
        return dict(
            W1=rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_hidden)), b1=np.zeros(n_hidden),
            W2=rng.normal(0, 1 / np.sqrt(n_hidden), (n_hidden, n_hidden)),
            b2=np.zeros(n_hidden),
            w3=np.zeros(n_hidden) if zero_output else rng.normal(0, 1 / np.sqrt(n_hidden), n_hidden),
            b3=np.zeros(()))

    @staticmethod
    def forward(p: dict, x, dx=None):
        """Outputs, and the cache for gradients.

        Parameters
        ----------
        p : dict
        x : ndarray, shape (N, D_in)
        dx : ndarray, shape (N, D_in), optional
            Tangent; if given, ``cache["edot"]`` is the directional derivative
            ``de/dx · dx`` per row.

        Returns
        -------
        e : ndarray, shape (N,)
        cache : dict
        """
        h1 = np.tanh(x @ p["W1"] + p["b1"])
        h2 = np.tanh(h1 @ p["W2"] + p["b2"])
        cache = dict(x=x, h1=h1, h2=h2, dx=dx)
        if dx is not None:
            z1d = dx @ p["W1"]
            h1d = (1 - h1**2) * z1d
            z2d = h1d @ p["W2"]
            h2d = (1 - h2**2) * z2d
            cache.update(z1d=z1d, h1d=h1d, z2d=z2d, h2d=h2d, edot=h2d @ p["w3"])
        return h2 @ p["w3"] + p["b3"], cache

    @staticmethod
    def input_gradient(p: dict, cache) -> np.ndarray:
        """de/dx, shape (N, D_in)."""
        a2 = (1 - cache["h2"] ** 2) * p["w3"]
        a1 = (a2 @ p["W2"].T) * (1 - cache["h1"] ** 2)
        return a1 @ p["W1"].T

    @staticmethod
    def backward(p: dict, cache, e_bar, edot_bar=None, x_bar=False) -> dict:
        """Gradient of ``sum(e_bar * e) + sum(edot_bar * edot)`` w.r.t. the parameters.

        With ``x_bar=True`` the gradient w.r.t. the inputs is returned as ``grads["x"]``.
        """
        h1, h2, x = cache["h1"], cache["h2"], cache["x"]
        g = {k: np.zeros_like(v) for k, v in p.items()}
        g["w3"] += h2.T @ e_bar
        g["b3"] += e_bar.sum()
        h2_bar = np.outer(e_bar, p["w3"])
        h1_bar = np.zeros_like(h1)
        if edot_bar is not None:
            g["w3"] += cache["h2d"].T @ edot_bar
            h2d_bar = np.outer(edot_bar, p["w3"])
            z2d_bar = h2d_bar * (1 - h2**2)
            h2_bar += h2d_bar * (-2 * h2 * cache["z2d"])
            g["W2"] += cache["h1d"].T @ z2d_bar
            h1d_bar = z2d_bar @ p["W2"].T
            z1d_bar = h1d_bar * (1 - h1**2)
            h1_bar += h1d_bar * (-2 * h1 * cache["z1d"])
            g["W1"] += cache["dx"].T @ z1d_bar
        z2_bar = h2_bar * (1 - h2**2)
        g["W2"] += h1.T @ z2_bar
        g["b2"] += z2_bar.sum(0)
        h1_bar += z2_bar @ p["W2"].T
        z1_bar = h1_bar * (1 - h1**2)
        g["W1"] += x.T @ z1_bar
        g["b1"] += z1_bar.sum(0)
        if x_bar:
            g["x"] = z1_bar @ p["W1"].T
        return g


class Adam:
    """Adam optimiser over a dict of parameter arrays (updated in place)."""

    def __init__(self, params: dict, lr: float = 1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: dict, lr: float | None = None):
        self.t += 1
        lr = self.lr if lr is None else lr
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            mhat = self.m[k] / (1 - self.b1**self.t)
            vhat = self.v[k] / (1 - self.b2**self.t)
            self.params[k] -= lr * mhat / (np.sqrt(vhat) + self.eps)


def _flat(per_element: list[dict]) -> dict:
    return {f"{e}.{k}": v for e, p in enumerate(per_element) for k, v in p.items()}


def _unflat(flat: dict, n: int) -> list[dict]:
    out = [{} for _ in range(n)]
    for key, v in flat.items():
        e, k = key.split(".", 1)
        out[int(e)][k] = v
    return out


@dataclass
class ResidualNetwork:
    """Linear model plus per-element MLP on its residual (conservative).

    Attributes
    ----------
    linear : LinearModel
    mean, scale : ndarray, shape (S, D)
        Input standardisation per element.
    params : list of dict
        MLP parameters per element (see :class:`MLP`); the MLP output is in eV.
    """

    linear: LinearModel
    mean: np.ndarray
    scale: np.ndarray
    params: list
    info: dict = field(default_factory=dict)
    kind = "nn"

    @property
    def descriptor(self) -> Descriptor:
        return self.linear.descriptor

    def atomic_energies(self, expansion, features=None):
        """Per-atom energies (N,) in eV and dE/dG (N, D)."""
        g = expansion.features() if features is None else features
        e, w = self.linear.atomic_energies(expansion, g)
        w = w.copy()
        idx = expansion.species_index
        for k, p in enumerate(self.params):
            rows = np.flatnonzero(idx == k)
            if len(rows) == 0:
                continue
            x = (g[rows] - self.mean[k]) / self.scale[k]
            out, cache = MLP.forward(p, x)
            e[rows] += out
            w[rows] += MLP.input_gradient(p, cache) / self.scale[k]
        return e, w

    def evaluate(self, atoms) -> dict:
        """Energy (eV), energies (N,), forces (N, 3) eV/Å and virial (3, 3) eV."""
        exp = self.descriptor.expand(atoms)
        e, w = self.atomic_energies(exp)
        forces, virial = exp.vjp(w)
        return dict(energy=e.sum(), energies=e, forces=forces, virial=virial)

    def to_arrays(self) -> dict:
        return dict(linear_e0=self.linear.e0, linear_w=self.linear.w, mean=self.mean,
                    scale=self.scale, **{f"mlp.{k}": v for k, v in _flat(self.params).items()})

    @classmethod
    def from_arrays(cls, descriptor, arrays):
        linear = LinearModel(descriptor, arrays["linear_e0"], arrays["linear_w"])
        flat = {k[4:]: v for k, v in arrays.items() if k.startswith("mlp.")}
        return cls(linear, arrays["mean"], arrays["scale"], _unflat(flat, descriptor.n_species))


@dataclass
class _Batch:
    """Training structures merged into one expansion, with cached linear predictions."""

    expansion: object
    features: np.ndarray
    structure: np.ndarray      # (N,) structure index of each atom within the batch
    n_atoms: np.ndarray        # (B,)
    energy_residual: np.ndarray  # (B,) eV, reference minus linear
    force_residual: np.ndarray   # (N, 3) eV/Å
    forces: np.ndarray           # (N, 3) reference forces
    positions: np.ndarray        # (N, 3) centred per structure
    isolated: np.ndarray         # (B,) True for structures without periodicity


def make_batches(structures, linear: LinearModel, n_batches: int, rng):
    """Split structures randomly into merged batches (see :func:`descriptors.concatenate`)."""
    order = rng.permutation(len(structures))
    batches = []
    for chunk in np.array_split(order, n_batches):
        exps, struct, e_res, f_res, forces, pos, iso, n_at = [], [], [], [], [], [], [], []
        for b, k in enumerate(chunk):
            atoms = structures[k]
            exp = linear.descriptor.expand(atoms)
            e_lin, w = linear.atomic_energies(exp)
            f_lin, _ = exp.vjp(w)
            exps.append(exp)
            struct.append(np.full(len(atoms), b))
            e_res.append(atoms.get_potential_energy() - e_lin.sum())
            f_res.append(atoms.get_forces() - f_lin)
            forces.append(atoms.get_forces())
            pos.append(atoms.positions - atoms.positions.mean(0))
            iso.append(not atoms.pbc.any())
            n_at.append(len(atoms))
        exp = concatenate(exps)
        batches.append(_Batch(exp, exp.features(), np.concatenate(struct), np.array(n_at),
                              np.array(e_res), np.concatenate(f_res), np.concatenate(forces),
                              np.concatenate(pos), np.array(iso)))
    return batches


def _residual_loss_and_grad(params, mean, scale, batch: _Batch, sigma_e, sigma_f):
    """Loss (chi-square per label) and parameter gradients of the residual network."""
    exp, g, idx = batch.expansion, batch.features, batch.expansion.species_index
    n = exp.n_atoms
    e_atom = np.zeros(n)
    w = np.zeros_like(g)
    caches = {}
    for k, p in enumerate(params):
        rows = np.flatnonzero(idx == k)
        if len(rows):
            out, cache = MLP.forward(p, (g[rows] - mean[k]) / scale[k])
            e_atom[rows] = out
            w[rows] = MLP.input_gradient(p, cache) / scale[k]
            caches[k] = rows
    forces, _ = exp.vjp(w)
    n_struct = len(batch.n_atoms)
    e_struct = np.bincount(batch.structure, e_atom, minlength=n_struct)
    de = (e_struct - batch.energy_residual) / batch.n_atoms
    df = forces - batch.force_residual
    loss_e = np.mean(de**2) / sigma_e**2
    loss_f = np.mean(df**2) / sigma_f**2
    # adjoints: energy per atom and forces
    e_bar = (2 * de / (batch.n_atoms * n_struct * sigma_e**2))[batch.structure]
    f_bar = 2 * df / (df.size * sigma_f**2)
    # d loss_f / d theta = -(J f_bar) . d(dE/dG)/d theta: forward-over-reverse
    tangent = exp.jvp(f_bar)
    grads = []
    for k, p in enumerate(params):
        if k not in caches:
            grads.append({key: np.zeros_like(v) for key, v in p.items()})
            continue
        rows = caches[k]
        x = (g[rows] - mean[k]) / scale[k]
        _, cache = MLP.forward(p, x, dx=tangent[rows] / scale[k])
        grads.append(MLP.backward(p, cache, e_bar[rows], -np.ones(len(rows))))
    return loss_e, loss_f, grads


def train_residual(train, linear: LinearModel, n_hidden: int = 32, epochs: int = 120,
                   n_batches: int = 4, lr: float = 3e-3, sigma_e: float = 0.002,
                   sigma_f: float = 0.02, seed: int = 0, log=print, test=None):
    """Fit the residual MLPs with Adam (cosine-decayed learning rate).

    Parameters
    ----------
    train : sequence of ase.Atoms
        Labelled structures.
    linear : LinearModel
        The fitted linear model whose residual is learned.
    n_hidden : int
        Width of both hidden layers.
    epochs, n_batches : int
        Passes over the data, and merged batches per pass.
    lr : float
        Peak learning rate.
    sigma_e, sigma_f : float
        Loss scales in eV/atom and eV/Å.
    seed : int
    log : callable
        Progress printer (``None`` for silence).
    test : sequence of ase.Atoms, optional
        Reported after every tenth epoch.

    Returns
    -------
    ResidualNetwork
    """
    rng = np.random.default_rng(seed)
    d = linear.descriptor
    batches = make_batches(train, linear, n_batches, rng)
    g_all = np.concatenate([b.features for b in batches])
    idx_all = np.concatenate([b.expansion.species_index for b in batches])
    mean = np.zeros((d.n_species, d.n_features))
    scale = np.ones((d.n_species, d.n_features))
    for k in range(d.n_species):
        gk = g_all[idx_all == k]
        if len(gk):
            mean[k] = gk.mean(0)
            scale[k] = np.maximum(gk.std(0), 1e-8 * np.abs(gk).max() + 1e-300)
    params = [MLP.init(d.n_features, n_hidden, rng) for _ in range(d.n_species)]
    flat = _flat(params)
    adam = Adam(flat, lr)
    start = time.perf_counter()
    total = epochs * len(batches)
    for epoch in range(epochs):
        le = lf = 0.0
        for b in rng.permutation(len(batches)):
            step_lr = lr * 0.5 * (1 + np.cos(np.pi * adam.t / total))
            loss_e, loss_f, grads = _residual_loss_and_grad(
                _unflat(flat, d.n_species), mean, scale, batches[b], sigma_e, sigma_f)
            adam.step(_flat(grads), step_lr)
            le, lf = le + loss_e / len(batches), lf + loss_f / len(batches)
        if log and (epoch % 10 == 9 or epoch == epochs - 1):
            msg = (f"  epoch {epoch + 1:4d}  train RMSE E {np.sqrt(le) * sigma_e * 1e3:6.2f} "
                   f"meV/atom  F {np.sqrt(lf) * sigma_f:.4f} eV/Å  ({time.perf_counter() - start:.0f} s)")
            if test is not None:
                from .metrics import rmse
                model = ResidualNetwork(linear, mean, scale, _unflat(flat, d.n_species))
                err = rmse(model, test)
                msg += f"  test E {err['energy'] * 1e3:.2f} F {err['forces']:.4f}"
            log(msg)
    info = dict(n_hidden=n_hidden, epochs=epochs, n_batches=n_batches, lr=lr, seed=seed,
                sigma_e=sigma_e, sigma_f=sigma_f)
    return ResidualNetwork(linear, mean, scale, _unflat(flat, d.n_species), info)


@dataclass
class DirectForceModel:
    """Direct (non-conservative) force model; energy and stress from a linear model.

    Attributes
    ----------
    linear : LinearModel
    projection : ndarray, shape (S, D, k)
        Per-element projection of standardised descriptors to k atom features.
    mean, scale : ndarray, shape (S, D)
    params : dict
        Pair MLP parameters (input ``2k + 2S + K0``).
    penalised : bool
        Whether net-force and net-torque penalties were used in training.
    """

    linear: LinearModel
    projection: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    params: dict
    penalised: bool = False
    info: dict = field(default_factory=dict)
    kind = "nn_direct"

    @property
    def descriptor(self) -> Descriptor:
        return self.linear.descriptor

    def atom_features(self, expansion, features=None):
        """Projected per-atom features, shape (N, k + S)."""
        g = expansion.features() if features is None else features
        idx = expansion.species_index
        x = np.einsum("id,idk->ik", (g - self.mean[idx]) / self.scale[idx], self.projection[idx])
        return np.concatenate([x, np.eye(self.descriptor.n_species)[idx]], axis=1)

    def pair_inputs(self, expansion, atom_x):
        """Inputs of both directions of every (half-list) pair, shape (2P, 2(k+S)+K0)."""
        d = self.descriptor
        r = expansion._r[:, :d.n_radial]
        xi, xj = atom_x[expansion.i], atom_x[expansion.j]
        return np.concatenate([np.concatenate([xi, xj, r], 1), np.concatenate([xj, xi, r], 1)])

    def pair_scalars(self, expansion, atom_x):
        d = self.descriptor
        fc, _, _ = quintic_switch(expansion._d, d.r_on, d.cutoff)
        inputs = self.pair_inputs(expansion, atom_x)
        s, cache = MLP.forward(self.params, inputs)
        return s * np.tile(fc, 2), cache, np.tile(fc, 2)

    def forces_from_scalars(self, expansion, s):
        """F_i = sum_j s_ij u_ij with u_ij the unit vector from i to j, shape (N, 3)."""
        p = len(expansion.i)
        n = expansion.n_atoms
        u = expansion._u
        forces = np.zeros((n, 3))
        for a in range(3):
            forces[:, a] = (np.bincount(expansion.i, s[:p] * u[:, a], minlength=n)
                            - np.bincount(expansion.j, s[p:] * u[:, a], minlength=n))
        return forces

    def evaluate(self, atoms) -> dict:
        exp = self.descriptor.expand(atoms)
        g = exp.features()
        e, w = self.linear.atomic_energies(exp, g)
        _, virial = exp.vjp(w)
        s, _, _ = self.pair_scalars(exp, self.atom_features(exp, g))
        return dict(energy=e.sum(), energies=e, forces=self.forces_from_scalars(exp, s),
                    virial=virial)

    def to_arrays(self) -> dict:
        return dict(linear_e0=self.linear.e0, linear_w=self.linear.w, mean=self.mean,
                    scale=self.scale, projection=self.projection,
                    penalised=np.array(self.penalised),
                    **{f"mlp.{k}": v for k, v in self.params.items()})

    @classmethod
    def from_arrays(cls, descriptor, arrays):
        linear = LinearModel(descriptor, arrays["linear_e0"], arrays["linear_w"])
        params = {k[4:]: v for k, v in arrays.items() if k.startswith("mlp.")}
        return cls(linear, arrays["projection"], arrays["mean"], arrays["scale"], params,
                   bool(arrays["penalised"]))

    @property
    def kind_name(self) -> str:
        return "nn_direct_penalised" if self.penalised else "nn_direct"


def net_force_and_torque(forces, positions, structure, n_struct):
    """Per-structure net force (B, 3) and torque about the centroid (B, 3)."""
    nf = np.stack([np.bincount(structure, forces[:, a], minlength=n_struct) for a in range(3)], 1)
    tq = np.cross(positions, forces)
    nt = np.stack([np.bincount(structure, tq[:, a], minlength=n_struct) for a in range(3)], 1)
    return nf, nt


def train_direct(train, linear: LinearModel, penalty: float = 0.0, n_project: int = 8,
                 n_hidden: int = 32, epochs: int = 60, n_batches: int = 4, lr: float = 3e-3,
                 sigma_f: float = 0.02, seed: int = 0, log=print):
    """Train the direct-force model on forces, optionally with net force/torque penalties.

    The loss is ``mean |F - F_ref|² / sigma_f²`` plus, if ``penalty > 0``,
    ``penalty * mean_structures(|sum_i F_i|² / N) / sigma_f²`` and the same for the net
    torque about the centroid of isolated structures (divided by N times their squared
    radius of gyration).

    Returns
    -------
    DirectForceModel
    """
    rng = np.random.default_rng(seed)
    d = linear.descriptor
    batches = make_batches(train, linear, n_batches, rng)
    g_all = np.concatenate([b.features for b in batches])
    idx_all = np.concatenate([b.expansion.species_index for b in batches])
    s = d.n_species
    mean = np.zeros((s, d.n_features))
    scale = np.ones((s, d.n_features))
    projection = np.zeros((s, d.n_features, n_project))
    for k in range(s):
        gk = g_all[idx_all == k]
        mean[k] = gk.mean(0)
        scale[k] = np.maximum(gk.std(0), 1e-300)
        _, _, vt = np.linalg.svd((gk - mean[k]) / scale[k], full_matrices=False)
        projection[k] = vt[:n_project].T
    n_in = 2 * (n_project + s) + d.n_radial
    params = MLP.init(n_in, n_hidden, rng, zero_output=False)
    params["w3"] *= 0.1
    model = DirectForceModel(linear, projection, mean, scale, params, penalty > 0)
    atom_x = [model.atom_features(b.expansion, b.features) for b in batches]
    adam = Adam(params, lr)
    total = epochs * len(batches)
    start = time.perf_counter()
    for epoch in range(epochs):
        lf = lp = 0.0
        for b in rng.permutation(len(batches)):
            batch = batches[b]
            exp = batch.expansion
            scal, cache, fc = model.pair_scalars(exp, atom_x[b])
            forces = model.forces_from_scalars(exp, scal)
            df = forces - batch.forces
            loss_f = np.mean(df**2) / sigma_f**2
            f_bar = 2 * df / (df.size * sigma_f**2)
            n_struct = len(batch.n_atoms)
            nf, nt = net_force_and_torque(forces, batch.positions, batch.structure, n_struct)
            rg2 = np.bincount(batch.structure, (batch.positions**2).sum(1), minlength=n_struct) \
                / batch.n_atoms
            loss_p = 0.0
            if penalty > 0:
                cf = penalty / (n_struct * batch.n_atoms * sigma_f**2)
                ct = np.where(batch.isolated, cf / rg2, 0.0)
                loss_p = np.sum(cf * (nf**2).sum(1) + ct * (nt**2).sum(1))
                # d|NF|²/dF_i = 2 NF ; d|NT|²/dF_i = 2 NT x r_i
                f_bar = f_bar + 2 * (cf[:, None] * nf)[batch.structure] \
                    + 2 * np.cross((ct[:, None] * nt)[batch.structure], batch.positions)
            p = len(exp.i)
            u = exp._u
            s_bar = np.concatenate([np.einsum("pa,pa->p", f_bar[exp.i], u),
                                    -np.einsum("pa,pa->p", f_bar[exp.j], u)])
            grads = MLP.backward(params, cache, s_bar * fc)
            step_lr = lr * 0.5 * (1 + np.cos(np.pi * adam.t / total))
            adam.step(grads, step_lr)
            lf, lp = lf + loss_f / len(batches), lp + loss_p / len(batches)
            del p
        if log and (epoch % 10 == 9 or epoch == epochs - 1):
            log(f"  epoch {epoch + 1:4d}  train RMSE F {np.sqrt(lf) * sigma_f:.4f} eV/Å  "
                f"penalty {lp:.3g}  ({time.perf_counter() - start:.0f} s)")
    model.info = dict(penalty=penalty, n_project=n_project, n_hidden=n_hidden, epochs=epochs,
                      n_batches=n_batches, lr=lr, seed=seed, sigma_f=sigma_f)
    return model

"""Small numpy neural networks on the density-expansion descriptors.

:class:`ResidualNetwork` (conservative)
    ``E = sum_i [e_lin(G_i) + s(c_i) MLP_{Z_i}((G_i - mu) / sigma)]``: a per-element
    two-layer tanh MLP learns the residual of the linear model.  It reads the raw
    products (:meth:`DensityExpansion.features` with ``subtract_self=False``) and is
    switched off by a coordination gate ``s(c_i)`` for atoms with at most one
    neighbour-equivalent, so a dimer's curve is the linear model's (fitted to the dimer
    data) while every condensed atom sees ``s = 1``.  Forces are the exact negative
    gradient: ``dE/dG`` from analytic backprop through the MLP, contracted with
    ``dG/dx`` by :meth:`DensityExpansion.pair_gradient`, plus the gate's coordination
    term.  Training on forces needs the gradient of a gradient; it is done with one
    forward-mode pass of the descriptor (:meth:`DensityExpansion.jvp` of the force-loss
    adjoint) and forward-over-reverse through the MLP (:meth:`MLP.backward` with a
    tangent), so no Jacobian is stored.

:class:`DirectForceModel` (not conservative)
    The linear model's forces plus a correction predicted directly as
    ``sum_j s_ij r̂_ij`` with a pair MLP ``s_ij = f(x_i, x_j, R(r_ij)) fc(r_ij)`` on
    projected descriptors of both atoms, trained on the linear model's force residual:
    rotation-equivariant and smooth, but not the gradient of any energy and, because
    ``s_ij != s_ji``, without Newton's third law.  Training optionally penalises the net
    force and (for isolated structures) the net torque.  Energy and stress are the
    linear model's.  It exists to show what those penalties change and that only the
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
           "train_direct", "network_inputs", "coordination_gate"]


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
    inputs : ndarray of bool, shape (D,), optional
        Descriptor columns the MLP reads (default all; :func:`network_inputs`: all but the
        gated pair densities, which are zero in condensed phases).
    gate : tuple of float, optional
        Coordinations ``(c_off, c_on)``: the MLP energy of atom i is multiplied by
        ``s(c_i)``, 0 for ``c_i <= c_off`` and 1 for ``c_i >= c_on`` (quintic in between),
        with ``c_i = sum_j fc(r_ij)`` (:attr:`DensityExpansion.coordination`).  An atom
        with a single neighbour has ``c_i < 1``, so with ``c_off = 1`` the network adds
        nothing to a dimer, whose curve is the linear model's; every training atom has
        ``c_i >= c_on``, where the gate is exactly 1.
    """

    linear: LinearModel
    mean: np.ndarray
    scale: np.ndarray
    params: list
    info: dict = field(default_factory=dict)
    inputs: np.ndarray | None = None
    gate: tuple | None = None
    kind = "nn"

    @property
    def descriptor(self) -> Descriptor:
        return self.linear.descriptor

    @property
    def inverse_scale(self) -> np.ndarray:
        """``inputs / scale`` (S, D): the standardised input is ``(G - mean) * inverse_scale``."""
        return _inverse_scale(self.scale, self.inputs)

    def network_energies(self, expansion, features):
        """MLP per-atom energies and their gradients.

        Parameters
        ----------
        expansion : DensityExpansion
        features : ndarray, shape (N, D)
            ``expansion.features(subtract_self=False)``.

        Returns
        -------
        e : ndarray, shape (N,)
            eV, including the coordination gate.
        w : ndarray, shape (N, D)
            dE/dG (raw features) per atom.
        radial : ndarray, shape (P,) or None
            dE/d|r_p| through the gate's coordinations (eV/Å); None where the gate is
            flat (every atom fully inside or outside it).
        """
        g = features
        n = len(g)
        e = np.zeros(n)
        w = np.zeros((n, g.shape[1]))
        idx = expansion.species_index
        for k, p in enumerate(self.params):
            rows = np.flatnonzero(idx == k)
            if len(rows) == 0:
                continue
            # standardisation folded into the first layer: no (N, D) temporary
            inv = self.inverse_scale[k]
            folded = dict(p, W1=p["W1"] * inv[:, None], b1=p["b1"] - (self.mean[k] * inv) @ p["W1"])
            out, cache = MLP.forward(folded, g if len(rows) == n else g[rows])
            grad = MLP.input_gradient(folded, cache)
            if len(rows) == n:
                e, w = out, grad
            else:
                e[rows], w[rows] = out, grad
        if self.gate is None:
            return e, w, None
        c, dfc = expansion.coordination
        s, ds = coordination_gate(c, self.gate)
        if np.all(s == 1.0):
            return e, w, None
        q = e * ds
        radial = dfc * (q[expansion.i] + q[expansion.j]) if np.any(q) else None
        return e * s, w * s[:, None], radial

    def evaluate(self, atoms) -> dict:
        """Energy (eV), energies (N,), forces (N, 3) eV/Å and virial (3, 3) eV."""
        exp = self.descriptor.expand(atoms)
        g = exp.features(subtract_self=False)
        e_nn, w_nn, radial = self.network_energies(exp, g)
        return self.linear.evaluate_expansion(exp, g, e_nn, w_nn, radial)

    def to_arrays(self) -> dict:
        extra = {} if self.inputs is None else {"mlp_inputs": np.asarray(self.inputs, bool)}
        if self.gate is not None:
            extra["mlp_gate"] = np.asarray(self.gate, dtype=float)
        return dict(**self.linear.to_arrays(), mean=self.mean, scale=self.scale, **extra,
                    **{f"mlp.{k}": v for k, v in _flat(self.params).items()})

    @classmethod
    def from_arrays(cls, descriptor, arrays):
        linear = LinearModel.from_arrays(descriptor, arrays)
        flat = {k[4:]: v for k, v in arrays.items() if k.startswith("mlp.")}
        gate = arrays.get("mlp_gate")
        return cls(linear, arrays["mean"], arrays["scale"], _unflat(flat, descriptor.n_species),
                   inputs=arrays.get("mlp_inputs"),
                   gate=None if gate is None else tuple(float(v) for v in gate))


#: Coordination gate of the shipped network: off up to one neighbour-equivalent, fully
#: on from two (every training atom has c >= 2.2).
NETWORK_GATE = (1.0, 2.0)


def coordination_gate(c, gate):
    """Gate ``s(c)`` and ``ds/dc`` (N,): 0 for ``c <= gate[0]``, 1 for ``c >= gate[1]``."""
    f, df, _ = quintic_switch(c, gate[0], gate[1])
    return 1.0 - f, -df


def network_inputs(descriptor: Descriptor) -> np.ndarray:
    """Columns the residual MLP reads (bool, (D,)): all but the gated pair densities."""
    mask = np.ones(descriptor.n_features, dtype=bool)
    mask[descriptor._gated] = False
    return mask


def _inverse_scale(scale, inputs=None):
    inv = 1.0 / np.asarray(scale, dtype=float)
    return inv if inputs is None else inv * np.asarray(inputs, dtype=float)


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
    stress_residual: np.ndarray  # (B, 6) eV/Å³, reference minus linear (0 if absent)
    has_stress: np.ndarray       # (B,) bool
    volume: np.ndarray           # (B,) Å³ (1 if no cell)
    pair_structure: np.ndarray   # (P,) structure index of every pair


def make_batches(structures, linear: LinearModel, n_batches: int, rng):
    """Split structures randomly into merged batches (see :func:`descriptors.concatenate`)."""
    order = rng.permutation(len(structures))
    batches = []
    for chunk in np.array_split(order, n_batches):
        exps, struct, e_res, f_res, forces, pos, iso, n_at = [], [], [], [], [], [], [], []
        s_res, has_s, vol = [], [], []
        for b, k in enumerate(chunk):
            atoms = structures[k]
            exp = linear.descriptor.expand(atoms)
            out = linear.evaluate_expansion(exp)
            e_lin, f_lin, v_lin = out["energies"], out["forces"], out["virial"]
            ref = atoms.calc.results
            has_s.append("stress" in ref and exp.volume is not None)
            vol.append(exp.volume if has_s[-1] else 1.0)
            s_res.append(ref["stress"] - _voigt(v_lin) / vol[-1] if has_s[-1] else np.zeros(6))
            exps.append(exp)
            struct.append(np.full(len(atoms), b))
            e_res.append(atoms.get_potential_energy() - e_lin.sum())
            f_res.append(atoms.get_forces() - f_lin)
            forces.append(atoms.get_forces())
            pos.append(atoms.positions - atoms.positions.mean(0))
            iso.append(not atoms.pbc.any())
            n_at.append(len(atoms))
        exp = concatenate(exps)
        structure = np.concatenate(struct)
        batches.append(_Batch(exp, exp.features(subtract_self=False), structure, np.array(n_at),
                              np.array(e_res), np.concatenate(f_res), np.concatenate(forces),
                              np.concatenate(pos), np.array(iso), np.array(s_res),
                              np.array(has_s), np.array(vol), structure[exp.i]))
    return batches


VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])


def _voigt(virial):
    """Symmetrised (..., 3, 3) -> Voigt (..., 6): xx yy zz yz xz xy."""
    sym = 0.5 * (virial + np.swapaxes(virial, -1, -2))
    return sym[..., VOIGT[0], VOIGT[1]]


def _from_voigt_adjoint(bar):
    """Adjoint of :func:`_voigt`: (..., 6) -> (..., 3, 3)."""
    out = np.zeros(bar.shape[:-1] + (3, 3))
    for k, (a, b) in enumerate(zip(*VOIGT)):
        if a == b:
            out[..., a, a] += bar[..., k]
        else:
            out[..., a, b] += 0.5 * bar[..., k]
            out[..., b, a] += 0.5 * bar[..., k]
    return out


def _residual_loss_and_grad(params, mean, scale, batch: _Batch, sigma_e, sigma_f,
                            sigma_s=None, gradient=True, inputs=None):
    """Chi-square losses (energy, forces, stress) and parameter gradients.

    Energy per atom, forces and (if ``sigma_s``) stress of the MLP residual are compared
    with the batch's residual labels.  The force and stress terms need the derivative of
    ``dE/dG`` w.r.t. the parameters along ``J^T``: one descriptor JVP of the combined
    adjoint displacement (atoms: ``-dL/dF``; pairs: ``(dL/dvirial) r_p``), then
    forward-over-reverse through the MLP.
    """
    exp, g, idx = batch.expansion, batch.features, batch.expansion.species_index
    n = exp.n_atoms
    inv = _inverse_scale(scale, inputs)
    e_atom = np.zeros(n)
    w = np.zeros_like(g)
    rows_of = {}
    for k, p in enumerate(params):
        rows = np.flatnonzero(idx == k)
        if len(rows):
            out, cache = MLP.forward(p, (g[rows] - mean[k]) * inv[k])
            e_atom[rows] = out
            w[rows] = MLP.input_gradient(p, cache) * inv[k]
            rows_of[k] = rows
    pair_g = exp.pair_gradient(raw=w)
    forces = np.empty((n, 3))
    for a in range(3):
        forces[:, a] = (np.bincount(exp.i, pair_g[:, a], minlength=n)
                        - np.bincount(exp.j, pair_g[:, a], minlength=n))
    n_struct = len(batch.n_atoms)
    e_struct = np.bincount(batch.structure, e_atom, minlength=n_struct)
    de = (e_struct - batch.energy_residual) / batch.n_atoms
    df = forces - batch.force_residual
    losses = [np.mean(de**2) / sigma_e**2, np.mean(df**2) / sigma_f**2, 0.0]
    stressed = batch.has_stress if sigma_s else np.zeros(n_struct, bool)
    if stressed.any():
        outer = pair_g[:, :, None] * exp.vector[:, None, :]
        virial = np.stack([np.bincount(batch.pair_structure, outer[:, a, b], minlength=n_struct)
                           for a in range(3) for b in range(3)], 1).reshape(n_struct, 3, 3)
        ds = (_voigt(virial) / batch.volume[:, None] - batch.stress_residual) * stressed[:, None]
        losses[2] = np.sum(ds**2) / (6 * stressed.sum() * sigma_s**2)
    if not gradient:
        return losses, None
    e_bar = (2 * de / (batch.n_atoms * n_struct * sigma_e**2))[batch.structure]
    f_bar = 2 * df / (df.size * sigma_f**2)
    pair_dr = None
    if stressed.any():
        s_bar = 2 * ds / (6 * stressed.sum() * sigma_s**2)
        lam = _from_voigt_adjoint(s_bar) / batch.volume[:, None, None]
        pair_dr = np.einsum("pab,pb->pa", lam[batch.pair_structure], exp.vector)
    tangent = exp.jvp(dx=-f_bar, pair_dr=pair_dr, subtract_self=False)
    grads = []
    for k, p in enumerate(params):
        if k not in rows_of:
            grads.append({key: np.zeros_like(v) for key, v in p.items()})
            continue
        rows = rows_of[k]
        _, cache = MLP.forward(p, (g[rows] - mean[k]) * inv[k], dx=tangent[rows] * inv[k])
        grads.append(MLP.backward(p, cache, e_bar[rows], np.ones(len(rows))))
    return losses, grads


def _standardisation(batches, n_species, n_features):
    g_all = np.concatenate([b.features for b in batches])
    idx_all = np.concatenate([b.expansion.species_index for b in batches])
    mean = np.zeros((n_species, n_features))
    scale = np.ones((n_species, n_features))
    for k in range(n_species):
        gk = g_all[idx_all == k]
        if len(gk):
            mean[k] = gk.mean(0)
            scale[k] = np.maximum(gk.std(0), 1e-8 * np.abs(gk).max() + 1e-300)
    return mean, scale


def train_residual(train, linear: LinearModel, validation=None, n_hidden: int = 32,
                   epochs: int = 100, n_batches: int = 4, lr: float = 3e-3,
                   sigma_e: float = 0.002, sigma_f: float = 0.02, sigma_s: float = 0.0005,
                   eval_every: int = 5, stop_after: int | None = None, seed: int = 0,
                   log=print, inputs="auto", gate=NETWORK_GATE):
    """Fit the residual MLPs with Adam (cosine-decayed learning rate).

    The last layer starts at zero, so training starts from the linear model; with a
    validation set the parameters of the epoch with the lowest validation loss are kept
    (the linear model itself is a candidate), so the network is never worse than the
    linear model on validation data.

    Parameters
    ----------
    train : sequence of ase.Atoms
        Labelled structures.
    linear : LinearModel
        The fitted linear model whose residual is learned.
    validation : sequence of ase.Atoms, optional
        Structures (other trajectories) for model selection.
    n_hidden : int
        Width of both hidden layers.
    epochs, n_batches : int
        Passes over the data, and merged batches per pass.
    lr : float
        Peak learning rate.
    sigma_e, sigma_f, sigma_s : float
        Loss scales in eV/atom, eV/Å and eV/Å³ (``sigma_s=None``: no stress term).
    eval_every : int
        Epochs between validation checks and progress lines.
    stop_after : int, optional
        Stop after this many epochs (of the schedule for ``epochs``): how a run selected
        on validation data is repeated on all data.
    seed : int
    log : callable or None
        Progress printer.
    inputs : "auto", None or ndarray of bool (D,)
        Descriptor columns the MLP reads; "auto": :func:`network_inputs`.
    gate : tuple of float or None
        Coordination gate of the network (see :class:`ResidualNetwork`); every training
        atom must be where it is 1.

    Returns
    -------
    ResidualNetwork
        ``info`` records the settings, the selected epoch and the validation loss.
    """
    rng = np.random.default_rng(seed)
    d = linear.descriptor
    batches = make_batches(train, linear, n_batches, rng)
    val = make_batches(validation, linear, 1, rng)[0] if validation else None
    mean, scale = _standardisation(batches, d.n_species, d.n_features)
    if isinstance(inputs, str):
        inputs = network_inputs(d)
    if gate is not None:
        for batch in batches + ([val] if val is not None else []):
            c, _ = batch.expansion.coordination
            if np.any(coordination_gate(c, gate)[0] < 1.0):
                raise ValueError(f"training atoms with coordination {c.min():.2f} < {gate[1]}: "
                                 "the network is gated off there (fit isolated molecules with "
                                 "the linear model)")
    params = [MLP.init(d.n_features, n_hidden, rng) for _ in range(d.n_species)]
    if inputs is not None:
        for p in params:
            p["W1"][~inputs] = 0.0      # unread inputs: no weights (their gradient is 0)
    flat = _flat(params)
    adam = Adam(flat, lr)
    sig = (sigma_e, sigma_f, sigma_s)

    def val_loss():
        if val is None:
            return np.nan
        losses, _ = _residual_loss_and_grad(_unflat(flat, d.n_species), mean, scale, val,
                                            *sig, gradient=False, inputs=inputs)
        return sum(losses)

    best = (val_loss(), 0, {k: v.copy() for k, v in flat.items()})
    start = time.perf_counter()
    total = epochs * len(batches)
    for epoch in range(1, (epochs if stop_after is None else stop_after) + 1):
        acc = np.zeros(3)
        for b in rng.permutation(len(batches)):
            step_lr = lr * 0.5 * (1 + np.cos(np.pi * adam.t / total))
            losses, grads = _residual_loss_and_grad(_unflat(flat, d.n_species), mean, scale,
                                                    batches[b], *sig, inputs=inputs)
            adam.step(_flat(grads), step_lr)
            acc += np.array(losses) / len(batches)
        if epoch % eval_every == 0 or epoch in (epochs, stop_after):
            vl = val_loss()
            if vl < best[0]:
                best = (vl, epoch, {k: v.copy() for k, v in flat.items()})
            if log:
                rms = np.sqrt(acc) * np.array([sigma_e * 1e3, sigma_f, (sigma_s or 0) * 160.2])
                log(f"  epoch {epoch:4d}  train RMSE E {rms[0]:5.2f} meV/atom  F {rms[1]:.4f} "
                    f"eV/Å  S {rms[2]:.3f} GPa  validation loss {vl:.3f} "
                    f"({time.perf_counter() - start:.0f} s)")
    if val is not None:
        flat = best[2]
    info = dict(n_hidden=n_hidden, epochs=epochs, n_batches=n_batches, lr=lr, seed=seed,
                sigma_e=sigma_e, sigma_f=sigma_f, sigma_s=sigma_s, stop_after=stop_after,
                selected_epoch=best[1],
                validation_loss=float(best[0]) if val is not None else None)
    if log and val is not None:
        log(f"  kept epoch {best[1]} (validation loss {best[0]:.3f})")
    return ResidualNetwork(linear, mean, scale, _unflat(flat, d.n_species), info, inputs,
                           None if gate is None else tuple(gate))


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
        g = expansion.features(subtract_self=False) if features is None else features
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
        """Linear energy and stress; forces = linear forces + direct pair correction."""
        exp = self.descriptor.expand(atoms)
        g = exp.features(subtract_self=False)
        out = self.linear.evaluate_expansion(exp, g)
        s, _, _ = self.pair_scalars(exp, self.atom_features(exp, g))
        out["forces"] = out["forces"] + self.forces_from_scalars(exp, s)
        return out

    def to_arrays(self) -> dict:
        return dict(**self.linear.to_arrays(), mean=self.mean,
                    scale=self.scale, projection=self.projection,
                    penalised=np.array(self.penalised),
                    **{f"mlp.{k}": v for k, v in self.params.items()})

    @classmethod
    def from_arrays(cls, descriptor, arrays):
        linear = LinearModel.from_arrays(descriptor, arrays)
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


def _direct_loss_and_grad(model, batch: _Batch, atom_x, penalty: float, sigma_f: float):
    """Force loss, penalty and pair-MLP gradients of the direct-force correction."""
    exp = batch.expansion
    scal, cache, fc = model.pair_scalars(exp, atom_x)
    forces = model.forces_from_scalars(exp, scal)
    df = forces - batch.force_residual
    loss_f = np.mean(df**2) / sigma_f**2
    f_bar = 2 * df / (df.size * sigma_f**2)
    n_struct = len(batch.n_atoms)
    loss_p = 0.0
    if penalty > 0:
        # linear forces carry no net force or torque, so the correction's are the total's
        nf, nt = net_force_and_torque(forces, batch.positions, batch.structure, n_struct)
        rg2 = np.bincount(batch.structure, (batch.positions**2).sum(1),
                          minlength=n_struct) / batch.n_atoms
        cf = penalty / (n_struct * batch.n_atoms * sigma_f**2)
        ct = np.where(batch.isolated, cf / rg2, 0.0)
        loss_p = np.sum(cf * (nf**2).sum(1) + ct * (nt**2).sum(1))
        # d|NF|²/dF_i = 2 NF ; d|NT|²/dF_i = 2 NT x r_i
        f_bar = f_bar + 2 * (cf[:, None] * nf)[batch.structure] \
            + 2 * np.cross((ct[:, None] * nt)[batch.structure], batch.positions)
    u = exp._u
    s_bar = np.concatenate([np.einsum("pa,pa->p", f_bar[exp.i], u),
                            -np.einsum("pa,pa->p", f_bar[exp.j], u)])
    return loss_f, loss_p, MLP.backward(model.params, cache, s_bar * fc)


def train_direct(train, linear: LinearModel, penalty: float = 0.0, n_project: int = 8,
                 n_hidden: int = 32, epochs: int = 60, n_batches: int = 4, lr: float = 3e-3,
                 sigma_f: float = 0.02, seed: int = 0, log=print):
    """Train the direct-force correction, optionally with net force/torque penalties.

    The correction is fitted to the linear model's force residual.  The loss is
    ``mean |F - F_ref|² / sigma_f²`` plus, if ``penalty > 0``,
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
    mean, scale = _standardisation(batches, s, d.n_features)
    projection = np.zeros((s, d.n_features, n_project))
    for k in range(s):
        gk = g_all[idx_all == k]
        _, _, vt = np.linalg.svd((gk - mean[k]) / scale[k], full_matrices=False)
        projection[k] = vt[:n_project].T
    n_in = 2 * (n_project + s) + d.n_radial
    params = MLP.init(n_in, n_hidden, rng, zero_output=False)
    params["w3"] *= 0.01
    model = DirectForceModel(linear, projection, mean, scale, params, penalty > 0)
    atom_x = [model.atom_features(b.expansion, b.features) for b in batches]
    adam = Adam(params, lr)
    total = epochs * len(batches)
    start = time.perf_counter()
    for epoch in range(epochs):
        lf = lp = 0.0
        for b in rng.permutation(len(batches)):
            loss_f, loss_p, grads = _direct_loss_and_grad(model, batches[b], atom_x[b],
                                                          penalty, sigma_f)
            step_lr = lr * 0.5 * (1 + np.cos(np.pi * adam.t / total))
            adam.step(grads, step_lr)
            lf, lp = lf + loss_f / len(batches), lp + loss_p / len(batches)
        if log and (epoch % 10 == 9 or epoch == epochs - 1):
            log(f"  epoch {epoch + 1:4d}  train RMSE F {np.sqrt(lf) * sigma_f:.4f} eV/Å  "
                f"penalty {lp:.3g}  ({time.perf_counter() - start:.0f} s)")
    model.info = dict(penalty=penalty, n_project=n_project, n_hidden=n_hidden, epochs=epochs,
                      n_batches=n_batches, lr=lr, seed=seed, sigma_f=sigma_f)
    return model

"""The freeze-thaw learning-curve model (Swersky, Snoek and Adams, 2014; ALGORITHMS.md §4.1), in torch.

Each training run n has an asymptote f_n; the asymptotes follow a GP over hyperparameters (Matérn-5/2 ARD
kernel k_x), and run n's curve is a GP around its asymptote with the exponential-decay kernel
k_t(t, t') = s_t * beta^alpha / (t + t' + beta)^alpha plus observation noise. The joint covariance of every
observation, K_t + O K_x Oᵀ, is never formed: with the Woodbury identity and the matrix determinant lemma,
inference costs one Cholesky per curve (T_n³) and one of an N x N matrix, instead of one of the joint
(sum of T_n)² matrix.

Notation, per curve n: K_n = k_t(t_n, t_n) + noise * I, lam_n = 1ᵀ K_n⁻¹ 1, gam_n = 1ᵀ K_n⁻¹ (y_n - m),
L = diag(lam). With B = I + L^½ K_x L^½ and A = L^½ B⁻¹ L^½ = (K_x + L⁻¹)⁻¹, the asymptotes' posterior is
C = (K_x⁻¹ + L)⁻¹ = K_x - K_x A K_x and mean m + C gam = m + K_x v, with v = gam - A K_x gam.
This module is pure: tensors in, tensors out; nothing here knows about trials or the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

JITTER = 1e-8


@dataclass(frozen=True)
class Curves:
    """Observed learning curves: configurations `x` (N x d, in the unit cube), and per curve its steps `t[n]`
    (scaled to (0, 1]) and values `y[n]` (standardized losses: the model minimizes)."""

    x: Tensor
    t: list[Tensor]
    y: list[Tensor]

    @property
    def count(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Hyperparameters:
    """Unconstrained (log-space) hyperparameters, so an optimizer can move them freely."""

    mean: Tensor  # m, the prior mean of every asymptote
    log_lengthscales: Tensor  # d
    log_scale_x: Tensor  # outputscale of k_x
    log_scale_t: Tensor  # s_t, the curve kernel's scale
    log_alpha: Tensor
    log_beta: Tensor
    log_noise: Tensor  # sigma²

    @classmethod
    def initial(cls, dimension: int, dtype: torch.dtype = torch.float64) -> Hyperparameters:
        def value(v: float, n: int | None = None) -> Tensor:
            shape = (n,) if n is not None else ()
            return torch.full(shape, v, dtype=dtype)
        return cls(mean=value(0.0), log_lengthscales=value(math.log(0.5) + 0.5 * math.log(dimension), dimension),
                   log_scale_x=value(0.0), log_scale_t=value(math.log(0.5)), log_alpha=value(0.0),
                   log_beta=value(math.log(0.5)), log_noise=value(math.log(1e-3)))

    def tensors(self) -> list[Tensor]:
        return [getattr(self, name) for name in _FIELDS]

    def detached(self) -> Hyperparameters:
        return Hyperparameters(*[p.detach().clone() for p in self.tensors()])

    def to_dict(self) -> dict[str, list[float] | float]:
        return {name: (p.tolist() if p.dim() else float(p)) for name, p in zip(_FIELDS, self.tensors(), strict=True)}

    @classmethod
    def from_dict(cls, data: dict[str, list[float] | float], dtype: torch.dtype = torch.float64) -> Hyperparameters:
        return cls(*[torch.tensor(data[name], dtype=dtype) for name in _FIELDS])


_FIELDS = tuple(f.name for f in fields(Hyperparameters))


def matern52(a: Tensor, b: Tensor, hyper: Hyperparameters) -> Tensor:
    """The asymptotes' kernel k_x: Matérn-5/2 with one lengthscale per dimension."""
    scaled_a, scaled_b = a / hyper.log_lengthscales.exp(), b / hyper.log_lengthscales.exp()
    distance = torch.cdist(scaled_a, scaled_b).clamp_min(1e-12) * math.sqrt(5)
    return hyper.log_scale_x.exp() * (1 + distance + distance**2 / 3) * torch.exp(-distance)


def decay_kernel(s: Tensor, u: Tensor, hyper: Hyperparameters) -> Tensor:
    """The curves' kernel k_t: a Gamma(alpha, beta) mixture of exponential decays,
    beta^alpha / (t + t' + beta)^alpha, scaled."""
    alpha, beta = hyper.log_alpha.exp(), hyper.log_beta.exp()
    return hyper.log_scale_t.exp() * torch.exp(alpha * (beta.log() - (s[:, None] + u[None, :] + beta).log()))


class FreezeThawPosterior:
    """Posterior of the asymptotes and curves given observed curves, by the block formulas (module docstring)."""

    def __init__(self, curves: Curves, hyper: Hyperparameters) -> None:
        self.curves, self.hyper = curves, hyper
        noise = hyper.log_noise.exp()
        self.chol: list[Tensor] = []
        lam, gam, quad, logdet = [], [], [], []
        for t, y in zip(curves.t, curves.y, strict=True):
            k = decay_kernel(t, t, hyper) + (noise + JITTER) * torch.eye(len(t), dtype=t.dtype)
            chol = torch.linalg.cholesky(k)
            self.chol.append(chol)
            ones = torch.ones(len(t), 1, dtype=t.dtype)
            inv_one = torch.cholesky_solve(ones, chol)
            residual = (y - hyper.mean)[:, None]
            inv_residual = torch.cholesky_solve(residual, chol)
            lam.append((ones * inv_one).sum())
            gam.append((ones * inv_residual).sum())
            quad.append((residual * inv_residual).sum())
            logdet.append(2 * chol.diagonal().log().sum())
        self.lam, self.gamma = torch.stack(lam), torch.stack(gam)
        self._quad, self._logdet = torch.stack(quad).sum(), torch.stack(logdet).sum()
        n = curves.count
        self.kx = matern52(curves.x, curves.x, hyper) + JITTER * torch.eye(n, dtype=curves.x.dtype)
        root = self.lam.sqrt()
        self.b_chol = torch.linalg.cholesky(torch.eye(n, dtype=self.kx.dtype) + root[:, None] * self.kx * root[None, :])
        self._root = root
        self.v = self.gamma - self._apply_a(self.kx @ self.gamma)
        self.mu = hyper.mean + self.kx @ self.v  # the asymptotes' posterior mean
        self.cov = self.kx - self.kx @ self._apply_a(self.kx)  # and covariance C

    def _apply_a(self, m: Tensor) -> Tensor:
        """A*m with A = Lambda^½ B⁻¹ Lambda^½ = (K_x + Lambda⁻¹)⁻¹."""
        column = m if m.dim() == 2 else m[:, None]
        out = self._root[:, None] * torch.cholesky_solve(self._root[:, None] * column, self.b_chol)
        return out if m.dim() == 2 else out[:, 0]

    def log_marginal_likelihood(self) -> Tensor:
        """log N(y; O m, K_t + O K_x Oᵀ), with log|K_x⁻¹ + Lambda| + log|K_x| = log|B|."""
        total = sum(len(t) for t in self.curves.t)
        fit: Tensor = -0.5 * self._quad + 0.5 * (self.gamma * (self.cov @ self.gamma)).sum()
        value: Tensor = fit - 0.5 * self._logdet - self.b_chol.diagonal().log().sum()
        return value - 0.5 * total * math.log(2 * math.pi)

    def asymptote(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of the asymptote of configurations `x` (M x d) not among the curves."""
        cross = matern52(x, self.curves.x, self.hyper)
        prior = self.hyper.log_scale_x.exp().expand(x.shape[0])
        variance = prior - (cross * self._apply_a(cross.T).T).sum(-1)
        return self.hyper.mean + cross @ self.v, variance.clamp_min(1e-12)

    def curve(self, n: int, steps: Tensor, *, observed: bool = False) -> tuple[Tensor, Tensor]:
        """Mean and variance of curve `n` at `steps` (its latent value, or a new observation if `observed`)."""
        t, y, chol = self.curves.t[n], self.curves.y[n], self.chol[n]
        cross = decay_kernel(steps, t, self.hyper)
        solved = torch.cholesky_solve(cross.T, chol)  # K_n⁻¹ k(t_n, steps)
        omega = 1 - solved.sum(0)
        mean = (solved * y[:, None]).sum(0) + omega * self.mu[n]
        prior = decay_kernel(steps, steps, self.hyper).diagonal()
        variance = prior - (cross.T * solved).sum(0) + omega**2 * self.cov[n, n]
        if observed:
            variance = variance + self.hyper.log_noise.exp()
        return mean, variance.clamp_min(1e-12)

    def new_curve(self, x: Tensor, steps: Tensor, *, observed: bool = False) -> tuple[Tensor, Tensor]:
        """Mean and variance of an unstarted configuration's curve at `steps` (one row of `x`)."""
        mean, variance = self.asymptote(x[None, :] if x.dim() == 1 else x[:1])
        curve_variance = decay_kernel(steps, steps, self.hyper).diagonal() + variance
        if observed:
            curve_variance = curve_variance + self.hyper.log_noise.exp()
        return mean.expand(len(steps)), curve_variance


def log_prior(hyper: Hyperparameters) -> Tensor:
    """Weak log-normal priors (MAP, decision D7): lengthscales around BoTorch's dimension-scaled default, the
    rest around unit scale, the noise small."""
    def lognormal(log_value: Tensor, centre: float, spread: float) -> Tensor:
        return (-0.5 * ((log_value - centre) / spread) ** 2).sum()

    dimension = hyper.log_lengthscales.shape[0]
    return (lognormal(hyper.log_lengthscales, math.sqrt(2) + 0.5 * math.log(dimension), math.sqrt(3))
            + lognormal(hyper.log_scale_x, 0.0, 1.0) + lognormal(hyper.log_scale_t, math.log(0.5), 1.0)
            + lognormal(hyper.log_alpha, 0.0, 1.0) + lognormal(hyper.log_beta, math.log(0.5), 1.0)
            + lognormal(hyper.log_noise, math.log(1e-3), 2.0) + lognormal(hyper.mean, 0.0, 2.0))


def fit(curves: Curves, start: Hyperparameters | None = None, *, iterations: int | None = None) -> Hyperparameters:
    """MAP hyperparameters by L-BFGS from `start` (the last fit, a warm start: 30 iterations by default) or the
    defaults (100)."""
    iterations = iterations or (30 if start is not None else 100)
    hyper = (start or Hyperparameters.initial(curves.x.shape[1], curves.x.dtype)).detached()
    params = hyper.tensors()
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.LBFGS(params, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = -(FreezeThawPosterior(curves, hyper).log_marginal_likelihood() + log_prior(hyper))
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    fallback = (start or Hyperparameters.initial(curves.x.shape[1], curves.x.dtype)).detached()
    try:
        optimizer.step(closure)  # type: ignore[no-untyped-call]
        fitted = hyper.detached()
        usable = bool(torch.isfinite(FreezeThawPosterior(curves, fitted).log_marginal_likelihood()))
    except (RuntimeError, ValueError):  # a step into a non-positive-definite region
        usable = False
    return fitted if usable else fallback

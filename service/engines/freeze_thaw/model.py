"""The freeze-thaw learning-curve model ("Freeze-Thaw Bayesian Optimization", Swersky, Snoek and Adams, 2014),
in torch.

Each training run n has an asymptote f_n; the asymptotes follow a GP over hyperparameters (Matérn-5/2 ARD
kernel k_x), and run n's curve is a GP around its asymptote with the exponential-decay kernel
k_t(t, t') = s_t * beta^alpha / (t + t' + beta)^alpha plus observation noise. Unlike the paper, the curves share
a mean decay g(t) = a * (b / (b + t))^c on top of their asymptotes (the expected decay under a Gamma(c, b) rate;
D13 in docs/decisions.md): every loss curve starts above where it ends, and without g an unstarted run would be
predicted at its asymptote from its first step on, which makes every new run look better than any started one.
The joint covariance of every observation, K_t + O K_x Oᵀ, is never formed: with the Woodbury identity and the
matrix determinant lemma, inference costs one Cholesky per curve (T_n³) and one of an N x N matrix, instead of one
of the joint (sum of T_n)² matrix.

Notation, per curve n: K_n = k_t(t_n, t_n) + noise * I, lam_n = 1ᵀ K_n⁻¹ 1, gam_n = 1ᵀ K_n⁻¹ (y_n - g(t_n) - m),
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
    trend: Tensor  # a, the mean decay's amplitude at t = 0
    log_trend_alpha: Tensor  # c
    log_trend_beta: Tensor  # b

    @classmethod
    def initial(cls, dimension: int, dtype: torch.dtype = torch.float64) -> Hyperparameters:
        def value(v: float, n: int | None = None) -> Tensor:
            shape = (n,) if n is not None else ()
            return torch.full(shape, v, dtype=dtype)

        return cls(
            mean=value(0.0),
            log_lengthscales=value(math.log(0.5) + 0.5 * math.log(dimension), dimension),
            log_scale_x=value(0.0),
            log_scale_t=value(math.log(0.5)),
            log_alpha=value(0.0),
            log_beta=value(math.log(0.5)),
            log_noise=value(math.log(1e-3)),
            trend=value(1.0),
            log_trend_alpha=value(0.0),
            log_trend_beta=value(math.log(0.1)),
        )

    def tensors(self) -> list[Tensor]:
        return [getattr(self, name) for name in _FIELDS]

    def detached(self) -> Hyperparameters:
        return Hyperparameters(*[p.detach().clone() for p in self.tensors()])

    def to_dict(self) -> dict[str, list[float] | float]:
        return {name: (p.tolist() if p.dim() else float(p)) for name, p in zip(_FIELDS, self.tensors(), strict=True)}

    @classmethod
    def from_dict(cls, data: dict[str, list[float] | float], dtype: torch.dtype = torch.float64) -> Hyperparameters:
        return cls(*[torch.tensor(data[name], dtype=dtype) for name in _FIELDS])

    @staticmethod
    def fits(data: dict[str, list[float] | float], dimension: int) -> bool:
        """Whether a stored fit can warm-start this model: every field, and one lengthscale per dimension."""
        lengthscales = data.get("log_lengthscales")
        return (
            all(name in data for name in _FIELDS) and isinstance(lengthscales, list) and len(lengthscales) == dimension
        )


_FIELDS = tuple(f.name for f in fields(Hyperparameters))
# Where a fit may land, on the standardized curves: outside these boxes lies no useful model, only the far slopes
# an unconstrained L-BFGS step can reach (seen: lengthscales of e^-270 and a negative trend, after which every
# warm start stayed there). The trend is non-negative: curves decay from above.
_BOUNDS: dict[str, tuple[float, float]] = {
    "mean": (-10.0, 10.0),
    "log_lengthscales": (math.log(1e-2), math.log(1e2)),
    "log_scale_x": (-9.0, 4.0),
    "log_scale_t": (-9.0, 4.0),
    "log_alpha": (-5.0, 5.0),
    "log_beta": (-9.0, 4.0),
    "log_noise": (-18.0, 2.0),
    "trend": (0.0, 20.0),
    "log_trend_alpha": (-5.0, 5.0),
    "log_trend_beta": (-9.0, 4.0),
}


def inside_bounds(hyper: Hyperparameters) -> bool:
    return all(
        bool(((getattr(hyper, name) >= low) & (getattr(hyper, name) <= high)).all())
        for name, (low, high) in _BOUNDS.items()
    )


def _clamped(hyper: Hyperparameters) -> Hyperparameters:
    return Hyperparameters(*[getattr(hyper, name).clamp(*_BOUNDS[name]) for name in _FIELDS])


def matern52(a: Tensor, b: Tensor, hyper: Hyperparameters) -> Tensor:
    """The asymptotes' kernel k_x: Matérn-5/2 with one lengthscale per dimension."""
    scaled_a, scaled_b = a / hyper.log_lengthscales.exp(), b / hyper.log_lengthscales.exp()
    distance = torch.cdist(scaled_a, scaled_b).clamp_min(1e-12) * math.sqrt(5)
    return hyper.log_scale_x.exp() * (1 + distance + distance**2 / 3) * torch.exp(-distance)


def decay_kernel(s: Tensor, u: Tensor, hyper: Hyperparameters) -> Tensor:
    """The curves' kernel k_t: a Gamma(alpha, beta) mixture of exponential decays,
    beta^alpha / (t + t' + beta)^alpha, scaled."""
    alpha, beta = hyper.log_alpha.exp(), hyper.log_beta.exp()
    return hyper.log_scale_t.exp() * torch.exp(alpha * (beta.log() - (s[..., :, None] + u[..., None, :] + beta).log()))


def trend(steps: Tensor, hyper: Hyperparameters) -> Tensor:
    """The curves' shared mean decay g(t) = a * (b / (b + t))^c, added to each run's asymptote."""
    beta = hyper.log_trend_beta.exp()
    return hyper.trend * torch.exp(hyper.log_trend_alpha.exp() * (beta.log() - (steps + beta).log()))


def _length_buckets(steps: list[Tensor]) -> list[list[int]]:
    """Curves grouped by length rounded up to a power of two, so each group pads at most twice its length."""
    buckets: dict[int, list[int]] = {}
    for n, t in enumerate(steps):
        buckets.setdefault(max(1, len(t) - 1).bit_length(), []).append(n)
    return list(buckets.values())


class FreezeThawPosterior:
    """Posterior of the asymptotes and curves given observed curves, by the block formulas (module docstring)."""

    def __init__(self, curves: Curves, hyper: Hyperparameters) -> None:
        self.curves, self.hyper = curves, hyper
        self.centred = [y - trend(t, hyper) for t, y in zip(curves.t, curves.y, strict=True)]  # y_n - g(t_n)
        self.chol: list[Tensor] = [curves.x.new_empty(0, 0)] * curves.count
        lam, gam = curves.x.new_zeros(curves.count), curves.x.new_zeros(curves.count)
        quad, logdet = curves.x.new_zeros(()), curves.x.new_zeros(())
        for members in _length_buckets(curves.t):
            bucket_lam, bucket_gam, bucket_quad, bucket_logdet = self._solve_bucket(members)
            index = torch.tensor(members, device=lam.device)
            lam, gam = lam.index_put((index,), bucket_lam), gam.index_put((index,), bucket_gam)
            quad, logdet = quad + bucket_quad, logdet + bucket_logdet
        self.lam, self.gamma = lam, gam
        self._quad, self._logdet = quad, logdet
        n = curves.count
        self.kx = matern52(curves.x, curves.x, hyper) + JITTER * torch.eye(n, dtype=curves.x.dtype)
        root = self.lam.sqrt()
        self.b_chol = torch.linalg.cholesky(torch.eye(n, dtype=self.kx.dtype) + root[:, None] * self.kx * root[None, :])
        self._root = root
        self.v = self.gamma - self._apply_a(self.kx @ self.gamma)
        self.mu = hyper.mean + self.kx @ self.v  # the asymptotes' posterior mean
        self.cov = self.kx - self.kx @ self._apply_a(self.kx)  # and covariance C

    def _solve_bucket(self, members: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """lam, gam, the quadratic forms and log-determinants of the curves `members`, in one batched Cholesky:
        each curve is padded to the bucket's length with an identity block, which changes none of them."""
        length = max(len(self.curves.t[n]) for n in members)
        t = torch.stack(
            [torch.nn.functional.pad(self.curves.t[n], (0, length - len(self.curves.t[n])), value=1.0) for n in members]
        )
        residual = torch.stack(
            [
                torch.nn.functional.pad(self.centred[n] - self.hyper.mean, (0, length - len(self.centred[n])))
                for n in members
            ]
        )
        mask = torch.stack([torch.arange(length, device=t.device) < len(self.curves.t[n]) for n in members])
        mask = mask.to(t.dtype)
        k = decay_kernel(t, t, self.hyper)
        noise = self.hyper.log_noise.exp() + JITTER
        k = k * mask[:, :, None] * mask[:, None, :] + torch.diag_embed(mask * noise + (1 - mask))
        chol = torch.linalg.cholesky(k)
        for row, n in enumerate(members):
            self.chol[n] = chol[row, : len(self.curves.t[n]), : len(self.curves.t[n])]
        solved = torch.cholesky_solve(torch.stack([mask, residual], dim=-1), chol)  # K⁻¹ [1, r] per curve
        lam = (mask * solved[..., 0]).sum(-1)
        gam = (mask * solved[..., 1]).sum(-1)
        quad = (residual * solved[..., 1]).sum()
        logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum()
        return lam, gam, quad, logdet

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

    def asymptote_joint(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and covariance of the asymptotes of configurations `x` (M x d) not among the curves, jointly."""
        cross = matern52(x, self.curves.x, self.hyper)
        covariance = matern52(x, x, self.hyper) - cross @ self._apply_a(cross.T)
        return self.hyper.mean + cross @ self.v, covariance

    def curve(self, n: int, steps: Tensor, *, observed: bool = False) -> tuple[Tensor, Tensor]:
        """Mean and variance of curve `n` at `steps` (its latent value, or a new observation if `observed`)."""
        t, y, chol = self.curves.t[n], self.centred[n], self.chol[n]
        cross = decay_kernel(steps, t, self.hyper)
        solved = torch.cholesky_solve(cross.T, chol)  # K_n⁻¹ k(t_n, steps)
        omega = 1 - solved.sum(0)
        mean = trend(steps, self.hyper) + (solved * y[:, None]).sum(0) + omega * self.mu[n]
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
        return mean + trend(steps, self.hyper), curve_variance


def log_prior(hyper: Hyperparameters) -> Tensor:
    """Weak log-normal priors (MAP, decision D7): lengthscales around BoTorch's dimension-scaled default, the
    rest around unit scale, the noise small."""

    def lognormal(log_value: Tensor, centre: float, spread: float) -> Tensor:
        return (-0.5 * ((log_value - centre) / spread) ** 2).sum()

    dimension = hyper.log_lengthscales.shape[0]
    return (
        lognormal(hyper.log_lengthscales, math.sqrt(2) + 0.5 * math.log(dimension), math.sqrt(3))
        + lognormal(hyper.log_scale_x, 0.0, 1.0)
        + lognormal(hyper.log_scale_t, math.log(0.5), 1.0)
        + lognormal(hyper.log_alpha, 0.0, 1.0)
        + lognormal(hyper.log_beta, math.log(0.5), 1.0)
        + lognormal(hyper.log_noise, math.log(1e-3), 2.0)
        + lognormal(hyper.mean, 0.0, 2.0)
        + lognormal(hyper.trend, 0.0, 3.0)
        + lognormal(hyper.log_trend_alpha, 0.0, 1.5)
        + lognormal(hyper.log_trend_beta, math.log(0.1), 2.0)
    )


def negative_log_posterior(curves: Curves, hyper: Hyperparameters) -> float:
    """The negative log posterior of `hyper` (MAP's objective), infinite where it cannot be computed."""
    try:
        with torch.no_grad():
            value = float(-(FreezeThawPosterior(curves, hyper).log_marginal_likelihood() + log_prior(hyper)))
    except (RuntimeError, ValueError):
        return math.inf
    return value if math.isfinite(value) else math.inf


def fit(curves: Curves, start: Hyperparameters | None = None, *, iterations: int | None = None) -> Hyperparameters:
    """MAP hyperparameters by L-BFGS from `start` (the last fit, a warm start: 30 iterations by default) or the
    defaults (100). A fit that leaves the bounds is clamped back into them, and a warm start that went wrong is
    retried cold; the best of what was tried (start included) wins."""
    initial = Hyperparameters.initial(curves.x.shape[1], curves.x.dtype)
    tried = [_clamped(start.detached()) if start is not None else initial]
    fitted, inside = _lbfgs(curves, tried[0], iterations or (30 if start is not None else 100))
    tried.append(fitted)
    if start is not None and not inside:
        tried += [initial, _lbfgs(curves, initial, iterations or 100)[0]]
    losses = [negative_log_posterior(curves, hyper) for hyper in tried]
    return tried[min(range(len(tried)), key=lambda i: losses[i])]


def _lbfgs(curves: Curves, start: Hyperparameters, iterations: int) -> tuple[Hyperparameters, bool]:
    """One L-BFGS run from `start`: the fit clamped into the bounds, and whether it had stayed inside them."""
    hyper = start.detached()
    params = hyper.tensors()
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.LBFGS(params, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = -(FreezeThawPosterior(curves, hyper).log_marginal_likelihood() + log_prior(hyper))
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    try:
        optimizer.step(closure)  # type: ignore[no-untyped-call]
    except (RuntimeError, ValueError):  # a step into a non-positive-definite region
        return start.detached(), False
    fitted = hyper.detached()
    if not all(bool(torch.isfinite(p).all()) for p in fitted.tensors()):
        return start.detached(), False
    return _clamped(fitted), inside_bounds(fitted)

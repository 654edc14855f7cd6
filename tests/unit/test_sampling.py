import torch

from service.engines.shared.sampling import covariance_root


def test_the_root_reproduces_a_posterior_covariance_over_a_pool() -> None:
    points = torch.rand(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    covariance = torch.exp(-(torch.cdist(points, points) ** 2) / 0.1)  # smooth: numerically rank-deficient
    root = covariance_root(covariance)
    assert torch.allclose(root @ root.T, covariance, atol=1e-5)


def test_a_barely_indefinite_covariance_still_gives_finite_draws() -> None:
    direction = torch.randn(50, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    covariance = direction @ direction.T - 1e-9 * torch.eye(50, dtype=torch.float64)  # rounding below zero
    root = covariance_root(covariance)
    assert bool(torch.isfinite(root).all())
    assert torch.allclose(root @ root.T, direction @ direction.T, atol=1e-3)


def test_a_matrix_no_jitter_mends_falls_back_to_the_clamped_eigendecomposition() -> None:
    covariance = torch.diag(torch.tensor([1.0, -1e3], dtype=torch.float64))
    root = covariance_root(covariance)
    assert torch.allclose(root @ root.T, torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64)))

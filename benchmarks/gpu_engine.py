"""The gp engine on CPU and CUDA: the same code path, timed, with a check that CUDA answers are valid.

For d in (6, 20) and n in (50, 200, 1000) completed trials (plus 4 pending ones), times one warm
suggestion (fit warm-started from the previous one, then qLogNEI) on each available device, and the
raw BoTorch floor (cold SingleTaskGP fit + qLogNEI optimize_acqf) on the same device. Needs only
torch, botorch, numpy, scipy and pydantic: no database, no server.

    python benchmarks/gpu_engine.py [--devices cpu,cuda] [--sizes 50,200,1000] [--dims 6,20] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView, normalize_params
from service.engines import resolve_engine
from service.engines.base import SuggestRequest

warnings.filterwarnings("ignore")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def engine_seconds(device: str, d: int, n: int, reps: int) -> tuple[float, float]:
    spec = StudySpec.model_validate(
        {
            "params": [{"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in range(d)],
            "objectives": [{"name": "loss", "goal": "minimize"}],
            "engine": "gp",
            "engine_options": {"initial_design": 10},
        }
    )
    resolved = resolve_engine(spec)
    rng = np.random.default_rng(d * 1000 + n)
    X = rng.random((n + 4, d))
    Y = ((X - 0.3) ** 2).sum(axis=1) + 0.01 * rng.normal(size=n + 4)
    trials = [
        TrialView(
            i,
            {f"x{j}": float(v) for j, v in enumerate(X[i])},
            TrialState.COMPLETED if i < n else TrialState.ACTIVE,
            {"loss": float(Y[i])} if i < n else None,
        )
        for i in range(n + 4)
    ]
    memory: dict[str, object] = {}
    cold = warm = 0.0
    times = []
    for rep in range(reps + 1):
        request = SuggestRequest(
            spec, resolved.options, 1, 7, n + 4 + rep, trials=trials, device=device, memory=dict(memory)
        )
        synchronize(device)
        started = time.perf_counter()
        suggested = resolved.engine.suggest(request)
        synchronize(device)
        elapsed = time.perf_counter() - started
        (params,) = suggested.params
        assert normalize_params(spec, params) == params, "suggestion outside the space"
        assert suggested.rung in ("fit", "fit-warm"), suggested.rung
        memory = suggested.memory or memory
        if rep == 0:
            cold = elapsed
        else:
            times.append(elapsed)
    warm = statistics.median(times)
    return cold, warm


def floor_seconds(device: str, d: int, n: int) -> float:
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models.gp_regression import SingleTaskGP
    from botorch.optim.optimize import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    rng = np.random.default_rng(d * 1000 + n)
    X = torch.tensor(rng.random((n, d)), dtype=torch.float64, device=device)
    Y = -((X - 0.3) ** 2).sum(dim=-1, keepdim=True)
    bounds = torch.stack([torch.zeros(d), torch.ones(d)]).to(X)
    synchronize(device)
    started = time.perf_counter()
    model = SingleTaskGP(X, Y)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acquisition = qLogNoisyExpectedImprovement(model, X_baseline=X, prune_baseline=True)
    optimize_acqf(acquisition, bounds, q=1, num_restarts=10, raw_samples=1024, timeout_sec=120)
    synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--dims", default="6,20")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
        f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        flush=True,
    )
    print("| device | d | n | engine cold s | engine warm s | BoTorch floor s |")
    print("|---|---|---|---|---|---|")
    for device in args.devices.split(","):
        for d in map(int, args.dims.split(",")):
            for n in map(int, args.sizes.split(",")):
                cold, warm = engine_seconds(device, d, n, args.reps)
                floor = floor_seconds(device, d, n)
                print(f"| {device} | {d} | {n} | {cold:.2f} | {warm:.2f} | {floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()

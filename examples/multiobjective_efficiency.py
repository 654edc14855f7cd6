"""Accuracy versus training time: a Pareto front of MLP classifiers on scikit-learn's digits.

The training time is a `cost` objective (minimized, modeled on a log scale), so the study finds the
cheapest model for each level of accuracy instead of one weighted compromise.

    python examples/multiobjective_efficiency.py --trials 40
"""

from __future__ import annotations

import argparse
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from asktell import Client, Trial

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)


def train(trial: Trial) -> dict[str, float]:
    model = MLPClassifier(
        hidden_layer_sizes=(trial.params["width"],) * trial.params["layers"],
        learning_rate_init=trial.params["lr"],
        max_iter=trial.params["epochs"],
        random_state=0,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    return {"val_error": 1.0 - model.score(X_val, y_val), "train_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--study", default="digits-efficiency")
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()

    study = Client().create_study(
        args.study,
        params=[
            {"name": "width", "type": "int", "low": 8, "high": 256, "log": True},
            {"name": "layers", "type": "int", "low": 1, "high": 3},
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            {"name": "epochs", "type": "int", "low": 5, "high": 200, "log": True},
        ],
        objectives=[
            {"name": "val_error", "goal": "minimize", "threshold": 0.5},
            {"name": "train_seconds", "goal": "minimize", "cost": True, "threshold": 30.0},
        ],
    )
    study.optimize(train, n_trials=args.trials)
    front = sorted(study.pareto_front(), key=lambda t: t.values["train_seconds"])  # type: ignore[index]
    print("Pareto front (val_error, train_seconds):")
    for trial in front:
        print(f"  {trial.values['val_error']:.4f}  {trial.values['train_seconds']:.3f}s  {trial.params}")  # type: ignore[index]
    print(f"dominated hypervolume: {study.hypervolume_history().hypervolume:.4f}")


if __name__ == "__main__":
    main()

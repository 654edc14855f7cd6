"""Tune an SVM on scikit-learn's bundled breast-cancer data with the Python SDK.

asktell serve &                      # or point ASKTELL_URL at your server
python examples/sklearn_svc.py --trials 30
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from asktell import Client, Trial

X, y = load_breast_cancer(return_X_y=True)


def cv_error(trial: Trial) -> float:
    model = make_pipeline(
        StandardScaler(), SVC(C=trial.params["C"], gamma=trial.params["gamma"], kernel=trial.params["kernel"])
    )
    return 1.0 - float(cross_val_score(model, X, y, cv=3).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--study", default="svc-breast-cancer")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="trials evaluated at once")
    args = parser.parse_args()

    study = Client().create_study(
        args.study,
        params=[
            {"name": "C", "type": "float", "low": 1e-2, "high": 1e3, "log": True},
            {"name": "gamma", "type": "float", "low": 1e-5, "high": 1.0, "log": True},
            {"name": "kernel", "type": "categorical", "choices": ["rbf", "sigmoid"]},
        ],
        objectives=[{"name": "cv_error", "goal": "minimize"}],
    )
    study.optimize(cv_error, n_trials=args.trials, n_workers=args.workers)
    (best,) = study.best_trials()
    print(f"best cv_error {best.values['cv_error']:.4f} with {best.params}")  # type: ignore[index]


if __name__ == "__main__":
    main()

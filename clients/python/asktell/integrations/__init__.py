"""Callbacks that connect training frameworks and experiment trackers to asktell trials.

Each module imports its framework, which comes with an extra of the package (`pip install asktell[xgboost]`):
`xgboost`, `lightgbm`, `lightning`, `huggingface`, `mlflow`, `wandb`, `ray`. The SDK itself stays light.
"""

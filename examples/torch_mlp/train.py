"""Train a PyTorch MLP on scikit-learn's digits, one epoch at a time, with a checkpoint on disk.

Run it under the agent, which fills in the trial's parameters and reads the `asktell:` lines:

    asktell studies create digits-mlp --spec examples/torch_mlp/study.json
    asktell agent digits-mlp --count 20 -- python examples/torch_mlp/train.py \
        --lr {lr} --hidden {hidden} --dropout {dropout} --epochs {budget} --checkpoint checkpoints/{trial_id}.pt

or alone (`python examples/torch_mlp/train.py --lr 0.01`). On SIGTERM (the agent's stop or pause) it
saves its checkpoint and exits; started again with the same --checkpoint it resumes where it stopped.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

torch.set_num_threads(1)
stop_requested = False


def request_stop(signum: int, frame: object) -> None:
    global stop_requested
    stop_requested = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoint.pt"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, request_stop)

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = (
        torch.tensor(a) for a in train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    )
    X_train, X_val = X_train.float(), X_val.float()
    model = torch.nn.Sequential(
        torch.nn.Linear(64, args.hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(args.dropout),
        torch.nn.Linear(args.hidden, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    epoch = 0
    if args.checkpoint.exists():
        state = torch.load(args.checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch = state["epoch"]
    generator = torch.Generator().manual_seed(epoch)
    while epoch < args.epochs and not stop_requested:
        model.train()
        for batch in torch.randperm(len(X_train), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(X_train[batch]), y_train[batch]).backward()
            optimizer.step()
        epoch += 1
        model.eval()
        with torch.no_grad():
            val_error = (model(X_val).argmax(dim=1) != y_val).float().mean().item()
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, args.checkpoint)
        print(f"asktell: step={epoch} val_error={val_error:.5f}", flush=True)


if __name__ == "__main__":
    main()

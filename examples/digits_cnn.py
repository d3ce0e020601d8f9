"""A small CNN on scikit-learn's bundled 8x8 digits, trained with manual_bp alone.

    pip install -e ".[examples]"      # manual_bp + scikit-learn
    python examples/digits_cnn.py [--seed 0] [--epochs 20]

No download: ``load_digits`` ships with scikit-learn. The images (pixel values
0..16) become x of shape (N, 1, 8, 8), standardised with the training split's
pixel mean and standard deviation; the split is stratified, 75 / 25, from the
seed. The network::

    Conv2d(1, 16, 3, padding=1) -> ReLU -> MaxPool2d(2)      (N, 16, 4, 4)
    Conv2d(16, 32, 3, padding=1) -> ReLU -> MaxPool2d(2)     (N, 32, 2, 2)
    Flatten -> Linear(128, 10) -> softmax cross-entropy

trained with Adam(lr=2e-3) on minibatches of 32 for 20 epochs (seeds 0-7: 97.8-99.6 %
test accuracy, about 3 s each on one core). It prints the progress and
the test accuracy, and exits with status 1 below 97 %.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import manual_bp as mbp

TARGET = 0.97


def load_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 75/25 split of load_digits as images (N, 1, 8, 8), standardised with the training split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)  # (1797, 64) intensities 0..16, (1797,)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    mean, std = X_tr.mean(), X_tr.std()
    X_tr, X_te = ((X_tr - mean) / std).reshape(-1, 1, 8, 8), ((X_te - mean) / std).reshape(-1, 1, 8, 8)
    return X_tr, X_te, y_tr.astype(np.int64), y_te.astype(np.int64)


def make_model(rng: np.random.Generator) -> mbp.Sequential:
    return mbp.Sequential(
        mbp.Conv2d(1, 16, 3, padding=1, rng=rng),
        mbp.ReLU(),
        mbp.MaxPool2d(2),  # (N, 16, 4, 4)
        mbp.Conv2d(16, 32, 3, padding=1, rng=rng),
        mbp.ReLU(),
        mbp.MaxPool2d(2),  # (N, 32, 2, 2)
        mbp.Flatten(),
        mbp.Linear(32 * 2 * 2, 10, rng=rng),  # (N, 10)
    )


def run_digits_cnn(
    seed: int = 0, epochs: int = 20, batch_size: int = 32, lr: float = 2e-3, verbose: bool = False
) -> dict:
    """Train the CNN; return test and train accuracy, wall time and the model."""
    X_tr, X_te, y_tr, y_te = load_split(seed)
    gen = np.random.default_rng(seed)
    model = make_model(gen)
    loss_fn = mbp.SoftmaxCrossEntropy()
    start = time.perf_counter()
    hist = mbp.fit(
        model,
        loss_fn,
        mbp.Adam(model, lr=lr),
        X_tr,
        y_tr,
        epochs,
        batch_size,
        rng=gen,
        validation=(X_te, y_te),
        verbose=verbose,
        progress=verbose,
    )
    seconds = time.perf_counter() - start
    return {
        "test_accuracy": mbp.evaluate(model, loss_fn, X_te, y_te).accuracy,
        "train_accuracy": hist.accuracy[-1],
        "seconds": seconds,
        "epochs": epochs,
        "n_train": len(X_tr),
        "n_test": len(X_te),
        "model": model,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a small manual_bp CNN on scikit-learn's load_digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    r = run_digits_cnn(args.seed, args.epochs, verbose=True)
    print(f"\nload_digits: {r['n_train']} train / {r['n_test']} test images 8x8, seed {args.seed}")
    print(r["model"])
    print(
        f"test accuracy {r['test_accuracy']:.4f} (train {r['train_accuracy']:.4f}) after {r['epochs']} epochs "
        f"in {r['seconds']:.1f} s"
    )
    if r["test_accuracy"] < TARGET:
        print(f"below the target of {TARGET:.0%}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

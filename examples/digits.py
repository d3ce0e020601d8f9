"""An MLP on scikit-learn's bundled 8x8 digits, next to ``sklearn.neural_network.MLPClassifier``.

    pip install -e ".[examples]"      # manual_bp + scikit-learn + matplotlib
    python examples/digits.py [--seed 0] [--epochs 40]

No download: ``load_digits`` ships with scikit-learn (``pip install manual-bp[examples]``).
Both models get the same stratified split, the same standardised features
(mean and std of the training split only), one hidden layer of 128 ReLU units,
Adam(lr=1e-3), minibatches of 32 and the same number of epochs; sklearn's L2
penalty and early stopping are switched off so the setups match.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import manual_bp as mbp


def load_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 75/25 split of load_digits, standardised with the training split's statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)  # (1797, 64) pixel intensities 0..16, (1797,)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    std[std == 0] = 1.0  # always-blank border pixels
    X_tr, X_te = (X_tr - mean) / std, (X_te - mean) / std
    return X_tr, X_te, y_tr.astype(np.int64), y_te.astype(np.int64)


def run_digits(
    seed: int = 0,
    epochs: int = 40,
    hidden: int = 128,
    batch_size: int = 32,
    lr: float = 1e-3,
    sklearn: bool = True,
    verbose: bool = False,
) -> dict:
    """Train manual_bp (and, if ``sklearn``, MLPClassifier); return test accuracies and wall times."""
    X_tr, X_te, y_tr, y_te = load_split(seed)
    gen = np.random.default_rng(seed)
    model = mbp.Sequential(mbp.Linear(64, hidden, rng=gen), mbp.ReLU(), mbp.Linear(hidden, 10, rng=gen))
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
        verbose=verbose,
        progress=verbose,
    )
    seconds = time.perf_counter() - start
    result = {
        "manual_bp": {
            "test_accuracy": mbp.evaluate(model, loss_fn, X_te, y_te).accuracy,
            "train_accuracy": hist.accuracy[-1],
            "seconds": seconds,
        },
        "n_train": len(X_tr),
        "n_test": len(X_te),
        "epochs": epochs,
    }
    if sklearn:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(
            hidden_layer_sizes=(hidden,),
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=batch_size,
            learning_rate_init=lr,
            max_iter=epochs,
            n_iter_no_change=epochs + 1,
            shuffle=True,
            random_state=seed,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the budget on purpose
            clf.fit(X_tr, y_tr)
        seconds = time.perf_counter() - start
        result["sklearn"] = {
            "test_accuracy": float(clf.score(X_te, y_te)),
            "train_accuracy": float(clf.score(X_tr, y_tr)),
            "seconds": seconds,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="manual_bp MLP vs sklearn MLPClassifier on load_digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    r = run_digits(args.seed, args.epochs, verbose=True)
    print(
        f"\nload_digits: {r['n_train']} train / {r['n_test']} test, 64-128-10 ReLU MLP, "
        f"Adam(lr=1e-3), batch 32, {r['epochs']} epochs, seed {args.seed}"
    )
    print(f"{'':24}{'test acc':>10}{'train acc':>11}{'time':>9}")
    for name in ("manual_bp", "sklearn"):
        m = r[name]
        label = "manual_bp (NumPy)" if name == "manual_bp" else "sklearn MLPClassifier"
        print(f"{label:24}{m['test_accuracy']:>10.4f}{m['train_accuracy']:>11.4f}{m['seconds']:>8.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

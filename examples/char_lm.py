"""A character-level LSTM language model on the Zen of Python, trained with manual_bp alone.

    python examples/char_lm.py [--seed 0] [--steps 600] [--plot char_lm_loss.png] [--torch-steps 10]

The text ships with Python: ``this.s`` holds the Zen of Python ROT13-encoded (``import this`` prints
it). The network predicts every next character of windows of T characters::

    Embedding(V, 16)            indices (N, T)  ->  (N, T, 16)
    LSTM(16, 64)                                ->  (N, T, 64)      (batch_first, zero initial state)
    Linear(64, V)                               ->  (N, T, V)       logits, one row per position

trained with Adam on the mean next-character cross-entropy over the N T positions. It prints the loss,
a sample drawn character by character (the LSTM's final state fed back as its next initial state),
and, when PyTorch is installed, how far the same model trained with ``torch.nn`` and ``torch.optim.Adam``
on the same batches drifts from manual_bp over the first steps (float64, step for step). ``--plot``
writes the loss curve (needs matplotlib).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import sys
import time
from typing import Any

import numpy as np

import manual_bp as mbp


def zen() -> str:
    """The Zen of Python, decoded from ``this.s`` (the import's own printing is swallowed)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


def make_model(V: int, rng: np.random.Generator, embed: int = 16, hidden: int = 64) -> mbp.Sequential:
    return mbp.Sequential(
        mbp.Embedding(V, embed, rng=rng), mbp.LSTM(embed, hidden, rng=rng), mbp.Linear(hidden, V, rng=rng)
    )


def batches(
    idx: np.ndarray, rng: np.random.Generator, steps: int, N: int, T: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of N windows: x = T characters from a random start, y = the same shifted by one."""
    starts = rng.integers(0, idx.size - T - 1, (steps, N))
    pos = starts[..., None] + np.arange(T)  # (steps, N, T)
    return [(idx[p], idx[p + 1]) for p in pos]


def train_step(
    model: mbp.Sequential, loss_fn: mbp.SoftmaxCrossEntropy, opt: mbp.Optimizer, x: np.ndarray, y: np.ndarray
) -> float:
    """One Adam step on the mean cross-entropy over every position; returns the loss before the step."""
    logits = model.forward(x)  # (N, T, V)
    V = logits.shape[-1]
    loss = float(loss_fn.forward(logits.reshape(-1, V), y.reshape(-1)))  # (N T, V) against (N T,)
    model.backward(loss_fn.backward(1.0).reshape(logits.shape))
    opt.step()
    return loss


def sample(
    model: mbp.Sequential, chars: list[str], start: str, n: int, rng: np.random.Generator, temperature: float = 0.7
) -> str:
    """n characters after ``start``, one forward of T = 1 per character, the LSTM's state carried along."""
    lookup = {c: i for i, c in enumerate(chars)}
    lstm = model[1]
    lstm.h0 = lstm.c0 = None
    out, logits = list(start), None
    for c in start:  # read the prompt
        logits = model.forward(np.array([[lookup[c]]]))
        lstm.h0, lstm.c0 = lstm.h_n, lstm.c_n
    for _ in range(n):
        z = logits[0, -1] / temperature
        p = np.exp(z - z.max())
        k = int(rng.choice(len(chars), p=p / p.sum()))
        out.append(chars[k])
        logits = model.forward(np.array([[k]]))
        lstm.h0, lstm.c0 = lstm.h_n, lstm.c_n
    lstm.h0 = lstm.c0 = None
    return "".join(out)


def torch_agreement(model: mbp.Sequential, data: list[tuple[np.ndarray, np.ndarray]], lr: float) -> dict[str, Any]:
    """``model`` trained on ``data`` beside the same model in torch (its parameters copied), step for step:
    the largest relative difference of the losses and of the parameters after the last step."""
    import torch

    emb, lstm, lin = model
    t_emb = torch.nn.Embedding(emb.num_embeddings, emb.embedding_dim, dtype=torch.float64)
    t_lstm = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True, dtype=torch.float64)
    t_lin = torch.nn.Linear(lin.in_features, lin.out_features, dtype=torch.float64)
    with torch.no_grad():
        t_emb.weight.copy_(torch.from_numpy(emb.params["W"]))
        for name, p in t_lstm.named_parameters():  # the same names and layouts
            p.copy_(torch.from_numpy(lstm.params[name]))
        t_lin.weight.copy_(torch.from_numpy(lin.params["W"].T))  # manual_bp's Linear weight is (in, out)
        t_lin.bias.copy_(torch.from_numpy(lin.params["b"]))
    modules = torch.nn.ModuleList([t_emb, t_lstm, t_lin])
    t_opt = torch.optim.Adam(modules.parameters(), lr=lr)
    opt, loss_fn = mbp.Adam(model, lr=lr), mbp.SoftmaxCrossEntropy()
    worst_loss = 0.0
    for x, y in data:
        ours = train_step(model, loss_fn, opt, x, y)
        t_opt.zero_grad()
        logits = t_lin(t_lstm(t_emb(torch.from_numpy(x)))[0])
        target = torch.from_numpy(y).reshape(-1)
        theirs = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target)
        theirs.backward()
        t_opt.step()
        worst_loss = max(worst_loss, abs(ours - theirs.item()) / abs(theirs.item()))
    pairs = [(emb.params["W"], t_emb.weight), (lin.params["W"].T, t_lin.weight), (lin.params["b"], t_lin.bias)]
    pairs += [(lstm.params[name], p) for name, p in t_lstm.named_parameters()]
    worst_param = max(float(np.abs(a - b.detach().numpy()).max() / np.abs(b.detach().numpy()).max()) for a, b in pairs)
    return {"steps": len(data), "loss_rel": worst_loss, "param_rel": worst_param}


def run_char_lm(
    seed: int = 0, steps: int = 600, N: int = 16, T: int = 32, lr: float = 3e-3, torch_steps: int = 10
) -> dict[str, Any]:
    """Train the model; return the loss curve, a sample, the torch agreement (or None) and the model."""
    text = zen()
    chars = sorted(set(text))
    idx = np.array([chars.index(c) for c in text])
    rng = np.random.default_rng(seed)
    model = make_model(len(chars), rng)
    data = batches(idx, rng, steps, N, T)
    agreement = None
    if torch_steps:
        twin = mbp.build(mbp.architecture(model))  # the same model, trained beside torch for the first steps
        twin.load_state_dict(model.state_dict())
        with contextlib.suppress(ImportError):
            agreement = torch_agreement(twin, data[:torch_steps], lr)
    opt, loss_fn = mbp.Adam(model, lr=lr), mbp.SoftmaxCrossEntropy()
    start = time.perf_counter()
    losses = [train_step(model, loss_fn, opt, x, y) for x, y in data]
    seconds = time.perf_counter() - start
    return {
        "losses": losses,
        "seconds": seconds,
        "sample": sample(model, chars, "Beautiful ", 200, rng),
        "agreement": agreement,
        "model": model,
        "chars": chars,
    }


def plot(losses: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title("character-level LSTM on the Zen of Python (manual_bp)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--torch-steps", type=int, default=10, help="steps compared with torch first (0: none)")
    ap.add_argument("--plot", default="", help="write the loss curve to this PNG")
    args = ap.parse_args(argv)
    result = run_char_lm(args.seed, args.steps, torch_steps=args.torch_steps)
    losses = result["losses"]
    print(
        f"loss {losses[0]:.3f} -> {np.mean(losses[-50:]):.3f} (mean of the last 50 steps), "
        f"{len(losses)} steps in {result['seconds']:.1f} s"
    )
    if result["agreement"] is not None:
        a = result["agreement"]
        print(
            f"torch, {a['steps']} steps side by side: losses within {a['loss_rel']:.1e}, "
            f"parameters within {a['param_rel']:.1e} (relative)"
        )
    print("sample:", result["sample"].replace("\n", "\n        "))
    if args.plot:
        plot(losses, args.plot)
        print("loss curve:", args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

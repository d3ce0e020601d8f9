# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The seed network by hand
#
# This notebook builds the 2-3-2 seed network from plain NumPy arrays, runs its forward and backward
# passes one line at a time, checks the gradients against finite differences and against PyTorch,
# trains it, and finally hands a model to `crosscheck.verify`. The derivation of every backward line is
# on [the seed derivation page](../derivations/seed.md).
#
# It is kept in the repository as a plain Python file (`docs/tutorial/seed_by_hand.py`, jupytext's
# percent format); CI executes it, and the site shows it with the outputs of that run. To open it as a
# notebook: `jupytext --to ipynb docs/tutorial/seed_by_hand.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import manual_bp as mbp

rng = np.random.default_rng(0)

# %% [markdown]
# ## Data and parameters
#
# Eight points of the two-moons problem, labels in {0, 1}, and the four parameter arrays. Weights are
# stored `(in, out)`, so a layer is `x @ W + b`.

# %%
X, y = mbp.data.two_moons(8, rng=rng)  # (8, 2) float64, (8,) int64
N = X.shape[0]
Y = np.eye(2)[y]  # (8, 2) one-hot targets

W1 = rng.standard_normal((2, 3)) * 0.8  # (2, 3)
b1 = rng.standard_normal(3) * 0.1  # (3,)
W2 = rng.standard_normal((3, 2)) * 0.8  # (3, 2)
b2 = rng.standard_normal(2) * 0.1  # (2,)
print("X", X.shape, "y", y)

# %% [markdown]
# ## Forward, one line per operation

# %%
z1 = X @ W1 + b1  # (8, 3)
a1 = np.maximum(z1, 0)  # (8, 3)
z2 = a1 @ W2 + b2  # (8, 2)
shifted = z2 - z2.max(axis=1, keepdims=True)  # out of place: z2 itself is not modified
logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # log-softmax by log-sum-exp
P = np.exp(logp)  # (8, 2)
L = -logp[np.arange(N), y].mean()  # () the mean cross-entropy
print(f"loss {L:.6f}")

# %% [markdown]
# ## Backward, one line per forward line, last first

# %%
dz2 = (P - Y) / N  # (8, 2)   softmax + cross-entropy, with the 1/N of the mean
dW2 = a1.T @ dz2  # (3, 2)
db2 = dz2.sum(axis=0)  # (2,)
da1 = dz2 @ W2.T  # (8, 3)
dz1 = da1 * (z1 > 0)  # (8, 3)   ReLU'(0) = 0
dW1 = X.T @ dz1  # (2, 3)
db1 = dz1.sum(axis=0)  # (3,)
hand = {"0.W": dW1, "0.b": db1, "2.W": dW2, "2.b": db2}
for name, g in hand.items():
    print(name, g.shape)

# %% [markdown]
# ## Check 1: finite differences
#
# Nudge each parameter entry by $\pm h$ and difference the loss. This uses only the forward pass, so a
# wrong backward cannot agree with it by accident.


# %%
def loss_of(W1, b1, W2, b2):
    z2 = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    s = z2 - z2.max(axis=1, keepdims=True)
    return -(s - np.log(np.exp(s).sum(axis=1, keepdims=True)))[np.arange(N), y].mean()


params = {"0.W": W1, "0.b": b1, "2.W": W2, "2.b": b2}
h = 1e-6
for name, p in params.items():
    numeric = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + h
        up = loss_of(W1, b1, W2, b2)
        p[i] = old - h
        down = loss_of(W1, b1, W2, b2)
        p[i] = old
        numeric[i] = (up - down) / (2 * h)
    err = np.abs(numeric - hand[name]).max() / max(np.abs(hand[name]).max(), 1e-12)
    print(f"{name}: max relative difference {err:.1e}")
    assert err < 1e-6, name

# %% [markdown]
# The same check with the library: build the network as a `Sequential` with these weights and let
# `manual_bp.gradcheck` do the differences for every parameter and the input.

# %%
model = mbp.Sequential(mbp.Linear(2, 3), mbp.ReLU(), mbp.Linear(3, 2))
model.load_state_dict({k: v.copy() for k, v in params.items()})
loss_fn = mbp.SoftmaxCrossEntropy()
loss = loss_fn.forward(model.forward(X), y)
model.backward(loss_fn.backward())
for name in hand:
    np.testing.assert_allclose(model.grads[name], hand[name], rtol=1e-12, atol=1e-15)
result = mbp.gradcheck(model, loss_fn, X, y)
print("library loss equals the hand loss:", np.isclose(loss, L, rtol=1e-14, atol=0), "| gradcheck ok:", result.ok)

# %% [markdown]
# ## Check 2: PyTorch autograd
#
# torch's `nn.Linear` stores its weight `(out, in)`, so the arrays are transposed on the way in and
# the gradients on the way out.

# %%
import torch  # noqa: E402

t = {k: torch.tensor(v if v.ndim == 1 else v.T, requires_grad=True) for k, v in params.items()}
tz2 = torch.relu(torch.tensor(X) @ t["0.W"].T + t["0.b"]) @ t["2.W"].T + t["2.b"]
tloss = torch.nn.functional.cross_entropy(tz2, torch.tensor(y))
tloss.backward()
for name, g in hand.items():
    tg = t[name].grad.numpy()
    tg = tg if tg.ndim == 1 else tg.T
    print(f"{name}: max |hand - torch| = {np.abs(tg - g).max():.1e}")
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)

# %% [markdown]
# ## Training
#
# Full-batch gradient descent on 400 points: `fit` runs forward, backward and `SGD.step` once per
# epoch.

# %%
rng = np.random.default_rng(0)
Xt, yt = mbp.data.two_moons(400, noise=0.15, rng=rng)
net = mbp.Sequential(mbp.Linear(2, 3, rng=rng), mbp.ReLU(), mbp.Linear(3, 2, rng=rng))
history = mbp.train.fit(net, loss_fn, mbp.SGD(net, lr=0.5), Xt, yt, epochs=1000, verbose=False, progress=False)
print(f"loss {history.loss[0]:.3f} -> {history.loss[-1]:.3f}, accuracy {history.accuracy[-1]:.3f}")

# %%
g0, g1 = np.meshgrid(np.linspace(-1.7, 2.7, 200), np.linspace(-1.2, 1.7, 200))
logits = mbp.train.predict(net, np.stack([g0.ravel(), g1.ravel()], axis=1))
margin = (logits[:, 1] - logits[:, 0]).reshape(g0.shape)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
ax0.contourf(g0, g1, margin > 0, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
ax0.contour(g0, g1, margin, levels=[0.0], colors="k", linewidths=1)
ax0.scatter(Xt[:, 0], Xt[:, 1], c=np.where(yt == 1, "#e6550d", "#3182bd"), s=8)
ax0.set_title("decision boundary")
ax1.plot(history.loss)
ax1.set_xscale("log")
ax1.set_xlabel("epoch")
ax1.set_ylabel("mean cross-entropy")
ax1.set_title("loss curve")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Verify against PyTorch and JAX
#
# `crosscheck.verify` rebuilds the model from its plain-data description with PyTorch's and JAX's own
# operations, runs all three on the same data, and compares every activation and gradient within
# derived tolerances (see [Verification](../verification.md) and [Tolerance](../tolerance.md)).

# %%
import crosscheck  # noqa: E402

report = crosscheck.verify(net, loss_fn, Xt[:32], yt[:32])
print(report.headline())
assert report.ok

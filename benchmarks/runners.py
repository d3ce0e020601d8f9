"""One training step per framework, built from the same NumPy data.

Each ``build_<framework>(cfg, x, y, layers)`` returns ``{variant: fn}``, where
``fn()`` runs one complete step and blocks until its results exist:

- ``grad``: forward + loss + backward (all parameter gradients);
- ``sgd``:  ``grad`` + an SGD update (lr = LR);
- ``adam``: ``grad`` + an Adam update (optimiser state created on its first call);
- manual_bp only, for the backward/forward ratio: ``fwd`` (forward + loss) and
  ``bwd`` (loss backward + model backward after one forward);
- manual_bp's backward is called with ``input_grad=False`` when its
  ``Sequential.backward`` accepts that argument (the first layer then skips
  dL/dx, as torch and JAX do); the cell records which (``mbp_input_grad``);
- the GEMM floors only (NumPy's, and torch's for comparison): ``grad`` (every product of the step) and
  ``grad_no_dx0`` (without the first layer's input gradient, which torch and JAX
  skip because x needs no gradient, and manual_bp skips with ``input_grad=False``);
- ``paired_manual_bp``: manual_bp's ``grad`` step, the same step in plain NumPy
  (``plain_numpy_step``: no checks, in place where it can be) and those products, on the model's own
  weights, each step timed in turn with the products in manual_bp's process
  (``timing.measure_paired``) after the rest.

Frameworks are imported inside the builders: each cell runs in its own process
with only its own framework loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.configs import LR, Config

Step = Callable[[], Any]
Layers = list[tuple[np.ndarray, np.ndarray]]


def warm_numpy() -> None:
    a = np.ones((8, 8))
    _ = a @ a


def _manual_bp_model(x: np.ndarray, layers: Layers) -> Any:
    """``Sequential(Linear, ReLU, ..., Linear)`` holding ``layers``' weights."""
    import manual_bp as mbp

    mods: list[Any] = []
    for i, (W, b) in enumerate(layers):
        lin = mbp.Linear(W.shape[0], W.shape[1], rng=0, dtype=x.dtype)
        np.copyto(lin.params["W"], W)
        np.copyto(lin.params["b"], b)
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(mbp.ReLU())
    return mbp.Sequential(*mods)


def build_manual_bp(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    return _manual_bp_steps(_manual_bp_model(x, layers), x, y)


def _manual_bp_steps(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Step]:
    import manual_bp as mbp

    # like torch and JAX, skip dL/dx of the input where manual_bp offers it (x needs no gradient)
    params_only = {"input_grad": False} if "input_grad" in inspect.signature(model.backward).parameters else {}
    loss_fn = mbp.SoftmaxCrossEntropy()
    sgd = mbp.SGD(model, lr=LR)
    adam: list[Any] = []

    def fwd() -> Any:
        return loss_fn.forward(model.forward(x), y)

    def bwd() -> Any:
        return model.backward(loss_fn.backward(), **params_only)

    def grad() -> Any:
        loss_fn.forward(model.forward(x), y)
        return model.backward(loss_fn.backward(), **params_only)

    def step_sgd() -> None:
        grad()
        sgd.step()

    def step_adam() -> None:
        if not adam:
            adam.append(mbp.Adam(model, lr=LR))
        grad()
        adam[0].step()

    def bwd_after_fwd() -> Any:
        return bwd()

    fwd()  # bwd needs a forward first
    return {"grad": grad, "sgd": step_sgd, "adam": step_adam, "fwd": fwd, "bwd": bwd_after_fwd}


def _products(x: np.ndarray, Ws: list[np.ndarray]) -> Callable[[bool], None]:
    """The matrix products of one step on weights ``Ws``, into preallocated outputs (no other work);
    the argument says whether the first layer's dx = dout @ W.T is computed too."""
    dtype, N = x.dtype, x.shape[0]
    acts = [x] + [np.ones((N, W.shape[1]), dtype) * 0.5 for W in Ws[:-1]]  # layer inputs (N, D_l)
    z = [np.empty((N, W.shape[1]), dtype) for W in Ws]  # (N, M_l)
    douts = [np.full((N, W.shape[1]), 1e-3, dtype) for W in Ws]  # (N, M_l)
    dxs = [np.empty((N, W.shape[0]), dtype) for W in Ws]  # (N, D_l)
    dWs = [np.empty_like(W) for W in Ws]  # (D_l, M_l)

    def products(first_dx: bool) -> None:
        for a, W, o in zip(acts, Ws, z):
            np.matmul(a, W, out=o)  # forward x @ W
        for i in reversed(range(len(Ws))):
            if i > 0 or first_dx:
                np.matmul(douts[i], Ws[i].T, out=dxs[i])  # dx = dout @ W.T
            np.matmul(acts[i].T, douts[i], out=dWs[i])  # dW = x.T @ dout

    return products


def build_gemm(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    """Only the matrix products of one step, into preallocated outputs (no other work)."""
    products = _products(x, [W for W, _ in layers])
    return {"grad": lambda: products(True), "grad_no_dx0": lambda: products(False)}


def plain_numpy_step(x: np.ndarray, y: np.ndarray, layers: Layers) -> Callable[[], tuple[Any, list]]:
    """The same fwd+loss+bwd (without dX0) in plain NumPy: no modules, no checks, no caches beyond the
    activations and masks, every elementwise operation in place where it can be, the products in
    manual_bp's form, and each dW written into the last call's array (as manual_bp's gradient storage
    does for large ones). What any NumPy step must spend beyond its products; it returns (loss, grads),
    grads as [(dW, db)] from the last layer to the first."""
    N = x.shape[0]
    rows = np.arange(N)
    dWs = [np.empty_like(W) for W, _ in layers]  # (D_l, M_l), reused by every call

    def step() -> tuple[Any, list]:
        acts, masks = [x], []  # layer inputs (N, D_l); ReLU masks (N, D_l+1)
        for W, b in layers[:-1]:
            z = acts[-1] @ W  # (N, M)
            z += b
            masks.append(z > 0)
            acts.append(np.maximum(z, 0, out=z))
        W, b = layers[-1]
        p = acts[-1] @ W  # logits (N, C), turned into softmax probabilities in place
        p += b
        p -= p.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[rows, y]).mean()
        d = p  # dL/dz = (p - onehot(y)) / N, in place
        d[rows, y] -= 1
        d *= 1.0 / N
        grads = []
        for i in reversed(range(len(layers))):
            grads.append((np.matmul(acts[i].T, d, out=dWs[i]), d.sum(axis=0)))  # dW = x^T dout, db = 1^T dout
            if i > 0:
                d = d @ layers[i][0].T  # dx = dout W^T, then the ReLU mask, in place
                d *= masks[i - 1]
        return loss, grads

    return step


def paired_manual_bp(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    """For ``timing.measure_paired`` in one process: manual_bp's training step (fwd+loss+bwd without
    dX0, ``grad``), the plain NumPy step (``plain``) and the products alone (``products``), all on the
    model's own weight arrays."""
    import manual_bp as mbp

    model = _manual_bp_model(x, layers)
    linears = [m for m in model if isinstance(m, mbp.Linear)]
    products = _products(x, [m.params["W"] for m in linears])
    plain = plain_numpy_step(x, y, [(m.params["W"], m.params["b"]) for m in linears])
    return {"grad": _manual_bp_steps(model, x, y)["grad"], "plain": plain, "products": lambda: products(False)}


def build_torch_gemm(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    """The same products in torch (its BLAS: MKL), in the form its autograd computes them for
    ``nn.Linear`` (weight (out, in)): ``x @ weight.T``, ``dout @ weight`` and ``dout.T @ x``, into
    preallocated outputs. Against ``build_gemm`` it shows how much of a gap is the BLAS alone."""
    import torch

    acts = [torch.from_numpy(x.copy())] + [
        torch.full((cfg.batch, W.shape[1]), 0.5, dtype=torch.from_numpy(W).dtype) for W, _ in layers[:-1]
    ]  # layer inputs (N, D_l)
    weights = [torch.from_numpy(np.ascontiguousarray(W.T)) for W, _ in layers]  # (M_l, D_l)
    z = [torch.empty(cfg.batch, w.shape[0], dtype=w.dtype) for w in weights]  # (N, M_l)
    douts = [torch.full_like(o, 1e-3) for o in z]  # (N, M_l)
    dxs = [torch.empty(cfg.batch, w.shape[1], dtype=w.dtype) for w in weights]  # (N, D_l)
    dws = [torch.empty_like(w) for w in weights]  # (M_l, D_l)

    def products(first_dx: bool) -> None:
        for a, w, o in zip(acts, weights, z):
            torch.matmul(a, w.T, out=o)  # forward x @ weight.T
        for i in reversed(range(len(weights))):
            if i > 0 or first_dx:
                torch.matmul(douts[i], weights[i], out=dxs[i])  # dx = dout @ weight
            torch.matmul(douts[i].T, acts[i], out=dws[i])  # dweight = dout.T @ x

    return {"grad": lambda: products(True), "grad_no_dx0": lambda: products(False)}


def warm_torch(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only possible once per process)
        pass
    _ = torch.ones(8, 8) @ torch.ones(8, 8)


def build_torch(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    dt = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[x.dtype]
    mods: list[nn.Module] = []
    for i, (W, b) in enumerate(layers):
        lin = nn.Linear(W.shape[0], W.shape[1], dtype=dt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T))  # torch's layout is (out, in)
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods)
    xt = torch.from_numpy(x.copy())
    yt = torch.from_numpy(y.copy())
    sgd = torch.optim.SGD(model.parameters(), lr=LR)
    adam = torch.optim.Adam(model.parameters(), lr=LR)  # state is created on its first step

    def grad() -> Any:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        return loss

    def step_sgd() -> None:
        grad()
        sgd.step()

    def step_adam() -> None:
        grad()
        adam.step()

    return {"grad": grad, "sgd": step_sgd, "adam": step_adam}


def warm_jax() -> None:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # float64 needs it; float32 arrays stay float32
    jax.block_until_ready(jnp.ones((8, 8)) @ jnp.ones((8, 8)))


def _build_jax(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers, jit: bool) -> dict[str, Step]:
    import jax
    import jax.numpy as jnp
    import optax

    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in layers]  # W (in, out), as manual_bp
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        h = x
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)  # (N, H)
        W, b = params[-1]
        logits = h @ W + b  # (N, C)
        return optax.losses.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    vg = jax.value_and_grad(loss_fn)

    def make_train_step(tx: optax.GradientTransformation) -> Callable[..., Any]:
        def train_step(params: Any, opt_state: Any, x: Any, y: Any) -> Any:
            loss, g = vg(params, x, y)
            updates, opt_state = tx.update(g, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        # donation lets XLA update parameters and state in place, as torch and manual_bp do
        return jax.jit(train_step, donate_argnums=(0, 1)) if jit else train_step

    grad_fn = jax.jit(vg) if jit else vg
    # one set of parameters for every variant (as torch and manual_bp): the train steps
    # donate it and put the updated one back here; grad reads the current one
    live: dict[str, Any] = {"p": params}
    del params

    def grad() -> Any:
        return jax.block_until_ready(grad_fn(live["p"], xj, yj))

    fns: dict[str, Step] = {"grad": grad}
    for name, tx in (("sgd", optax.sgd(LR)), ("adam", optax.adam(LR))):
        step = make_train_step(tx)

        def run(step: Any = step, tx: Any = tx, name: str = name) -> None:
            if live.get("opt") != name:  # optimiser state created on this variant's first call
                live["opt"], live["s"] = name, tx.init(live["p"])
            live["p"], live["s"], loss = step(live["p"], live["s"], xj, yj)
            jax.block_until_ready((live["p"], loss))

        fns[name] = run
    return fns


def build_jax_jit(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    return _build_jax(cfg, x, y, layers, jit=True)


def build_jax_nojit(cfg: Config, x: np.ndarray, y: np.ndarray, layers: Layers) -> dict[str, Step]:
    return _build_jax(cfg, x, y, layers, jit=False)


FRAMEWORKS: dict[str, dict[str, Any]] = {
    "manual_bp": {"build": build_manual_bp, "warm": lambda t: warm_numpy(), "numpy": True, "paired": paired_manual_bp},
    "torch": {"build": build_torch, "warm": warm_torch, "numpy": False},
    "jax_jit": {"build": build_jax_jit, "warm": lambda t: warm_jax(), "numpy": False},
    "jax_nojit": {"build": build_jax_nojit, "warm": lambda t: warm_jax(), "numpy": False},
    "gemm": {"build": build_gemm, "warm": lambda t: warm_numpy(), "numpy": True},
    "torch_gemm": {"build": build_torch_gemm, "warm": warm_torch, "numpy": False},
}

"""The exact oracle (crosscheck.reference.exact): closed forms, kink conventions, and a small exact sweep in
which manual_bp, PyTorch and JAX must each stay under the tolerance's bound against the exact values."""

from __future__ import annotations

import numpy as np
import pytest

from crosscheck.kinds._exact import TooLarge
from crosscheck.spec import LayerSpec, LossSpec, NetSpec

mpmath = pytest.importorskip("mpmath")
exact = pytest.importorskip("crosscheck.reference.exact")
mp = mpmath.mp
CLOSE = mpmath.mpf("1e-45")  # 50-digit arithmetic: agreement far below any float's rounding


def _linear(name: str, W: list[list[float]], b: list[float]) -> LayerSpec:
    W_, b_ = np.array(W, np.float64), np.array(b, np.float64)
    return LayerSpec(
        name, "linear", {"in_features": W_.shape[0], "out_features": W_.shape[1], "bias": True}, {"W": W_, "b": b_}
    )


def _layer(kind: str, **config: object) -> LayerSpec:
    return LayerSpec("0", kind, dict(config))


def _close(got: np.ndarray, want: list | np.ndarray, what: str) -> None:
    got_, want_ = np.asarray(got, dtype=object).ravel(), np.asarray(want, dtype=object).ravel()
    assert got_.shape == want_.shape, what
    with mp.workdps(60):
        for i, (g, w) in enumerate(zip(got_, want_)):
            assert abs(g - w) <= CLOSE * max(1, abs(w)), f"{what}[{i}]: {g} != {w}"


def _ce(**config: object) -> LossSpec:
    return LossSpec("softmax_cross_entropy", {"reduction": "mean", "label_smoothing": 0.0, **config})


def test_the_seed_network_on_a_hand_computed_example():
    """2 -> Linear -> ReLU -> Linear -> cross-entropy on x = (1, 2), label 1: z1 = (1, 1.5, -0.5), a1 = (1, 1.5, 0),
    z2 = (1, 1.5), loss = log(1 + e^-0.5); with p0 = 1 / (1 + e^0.5): dz2 = (p0, -p0), every gradient below."""
    spec = NetSpec(
        (
            _linear("0", [[1, -1, 0.5], [0, 1, -1]], [0, 0.5, 1]),
            LayerSpec("1", "relu", {}),
            _linear("2", [[1, 0], [0, 1], [2, -2]], [0, 0]),
        ),
        _ce(),
        "float64",
    )
    x, y = np.array([[1.0, 2.0]]), np.array([1])
    dout = np.array([[0.5, -2.0]])
    runs = exact.run(spec, x, y, dloss=1.0, dout=dout)
    with mp.workdps(60):
        p0 = 1 / (1 + mpmath.exp(mpmath.mpf(0.5)))
        got = runs["loss"]
        _close(got["0.out"], [1, 1.5, -0.5], "z1")
        _close(got["1.out"], [1, 1.5, 0], "a1")
        _close(got["2.out"], [1, 1.5], "z2")
        _close(got["loss"], [mpmath.log(1 + mpmath.exp(mpmath.mpf(-0.5)))], "loss")
        _close(got["dlogits"], [p0, -p0], "dz2")
        _close(got["2.dW"], [[p0, -p0], [1.5 * p0, -1.5 * p0], [0, 0]], "dW2")
        _close(got["2.db"], [p0, -p0], "db2")
        _close(got["2.dx"], [p0, -p0, 4 * p0], "da1")
        _close(got["1.dx"], [p0, -p0, 0], "dz1")  # ReLU'(-0.5) = 0
        _close(got["0.dW"], [[p0, -p0, 0], [2 * p0, -2 * p0, 0]], "dW1")
        _close(got["0.db"], [p0, -p0, 0], "db1")
        _close(got["0.dx"], [2 * p0, -p0], "dx")
        vjp = runs["vjp"]  # an upstream gradient on the logits: dW2 = a1^T dout
        _close(vjp["2.dW"], [[0.5, -2], [0.75, -3], [0, 0]], "vjp dW2")
        _close(vjp["2.dx"], [0.5, -2, 5], "vjp da1")
        assert "loss" not in vjp and "dlogits" not in vjp


@pytest.mark.parametrize("dloss", [1.0, -0.75])
def test_cross_entropy_at_equal_logits_is_log_c(dloss):
    """Equal logits: loss = log C, dlogits = dloss (1/C - onehot) / N."""
    N, C = 2, 3
    spec = NetSpec((_layer("identity"),), _ce(), "float64")
    y = np.array([0, 2])
    got = exact.run(spec, np.zeros((N, C)), y, dloss=dloss, dout=np.zeros((N, C)))["loss"]
    with mp.workdps(60):
        _close(got["loss"], [mpmath.log(3)], "loss")
        want = (np.full((N, C), mpmath.mpf(1) / 3, dtype=object) - np.eye(C, dtype=int)[y]) * mpmath.mpf(dloss) / N
        _close(got["dlogits"], want, "dlogits")


def test_cross_entropy_with_weights_smoothing_and_ignored_labels_by_definition():
    """sum_n sum_c w_c q_nc (lse_n - z_nc) / sum_{n kept} w[y_n], q = (1 - eps) onehot + eps / C."""
    rng = np.random.default_rng(3)
    z, w, eps = rng.standard_normal((4, 3)), np.array([0.5, 2.0, 1.25]), 0.1
    y = np.array([2, -100, 0, 1])
    spec = NetSpec((_layer("identity"),), _ce(weight=w, label_smoothing=eps), "float64")
    got = exact.run(spec, z, y, dloss=1.0, dout=np.zeros_like(z))["loss"]["loss"]
    with mp.workdps(60):
        total, divisor = mpmath.mpf(0), mpmath.mpf(0)
        for n in (0, 2, 3):
            lse = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in z[n]))
            for c in range(3):
                q = mpmath.mpf(eps) / 3 + (1 - mpmath.mpf(eps) if c == y[n] else 0)
                total += mpmath.mpf(w[c]) * q * (lse - mpmath.mpf(z[n, c]))
            divisor += mpmath.mpf(w[y[n]])
        _close(got, [total / divisor], "loss")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gelu_against_erf_by_definition(seed):
    """GELU(x) = x (1 + erf(x / sqrt 2)) / 2, GELU'(x) = Phi(x) + x phi(x), with random upstream gradients."""
    x = np.array([[-3.0, -1.0, -0.5, 0.0, 0.25, 2.0, 7.5]])
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    got = exact.run(NetSpec((_layer("gelu", approximate="none"),), None, "float64"), x, None, dloss=1.0, dout=dout)[
        "vjp"
    ]
    with mp.workdps(60):
        xs = [mpmath.mpf(v) for v in x.ravel()]
        Phi = [(1 + mpmath.erf(v / mpmath.sqrt(2))) / 2 for v in xs]
        phi = [mpmath.exp(-v * v / 2) / mpmath.sqrt(2 * mpmath.pi) for v in xs]
        _close(got["0.out"], [v * P for v, P in zip(xs, Phi)], f"gelu out (seed {seed})")
        _close(
            got["0.dx"],
            [mpmath.mpf(g) * (P + v * p) for g, v, P, p in zip(dout.ravel(), xs, Phi, phi)],
            f"gelu dx (seed {seed})",
        )


@pytest.mark.parametrize(
    ("layer", "slope"),
    [
        (_layer("relu"), 0.0),
        (_layer("leaky_relu", negative_slope=0.1), 0.1),
        (_layer("elu", alpha=1.7), 1.7),
    ],
)
def test_kinks_take_the_documented_derivative(layer, slope):
    """At x = 0: ReLU'(0) = 0, LeakyReLU'(0) = slope, ELU'(0) = alpha (docs/conventions.md)."""
    got = exact.run(NetSpec((layer,), None, "float64"), np.zeros((1, 1)), None, dloss=1.0, dout=np.full((1, 1), 3.0))[
        "vjp"
    ]
    _close(got["0.out"], [0], "out")
    with mp.workdps(60):
        _close(got["0.dx"], [3 * mpmath.mpf(slope)], "dx")


def test_softplus_is_the_identity_past_its_threshold():
    layer = _layer("softplus", beta=2.0, threshold=1.0)
    x = np.array([[0.25, 0.75]])  # beta x = 0.5 (the log1p branch), 1.5 (> threshold: the identity)
    got = exact.run(NetSpec((layer,), None, "float64"), x, None, dloss=1.0, dout=np.ones((1, 2)))["vjp"]
    with mp.workdps(60):
        _close(got["0.out"], [mpmath.log1p(mpmath.exp(mpmath.mpf(0.5))) / 2, 0.75], "out")
        _close(got["0.dx"], [1 / (1 + mpmath.exp(mpmath.mpf(-0.5))), 1], "dx")


def test_batch_norm_running_statistics_take_the_unbiased_variance():
    x = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]])
    layer = LayerSpec(
        "0",
        "batch_norm",
        {"num_features": 2, "eps": 1e-5, "momentum": 0.1, "affine": False},
        buffers={"running_mean": np.array([0.5, 0.0]), "running_var": np.array([1.0, 2.0])},
    )
    got = exact.run(NetSpec((layer,), None, "float64"), x, None, dloss=1.0, dout=np.ones_like(x))["vjp"]
    with mp.workdps(60):
        col = [[mpmath.mpf(v) for v in x[:, j]] for j in range(2)]
        mu = [mpmath.fsum(c) / 3 for c in col]
        var_u = [mpmath.fsum((v - m) ** 2 for v in c) / 2 for c, m in zip(col, mu)]
        m = mpmath.mpf(0.1)
        _close(got["0.running_mean"], [(1 - m) * mpmath.mpf(0.5) + m * mu[0], m * mu[1]], "running_mean")
        _close(got["0.running_var"], [(1 - m) + m * var_u[0], (1 - m) * 2 + m * var_u[1]], "running_var")
        _close(got["0.dx"], [0] * 6, "dx of a sum of normalised columns")  # sum_i xhat_i is constant


def test_too_large_and_unsupported_cases_are_refused():
    spec = NetSpec((_linear("0", [[1.0] * 4] * 4, [0.0] * 4),), None, "float64")
    with pytest.raises(TooLarge):
        exact.run(spec, np.ones((8, 4)), None, dloss=1.0, dout=np.ones((8, 4)), max_nodes=50)
    conv = NetSpec((LayerSpec("0", "no_such_exact_kind_here", {}),), None, "float64")
    with pytest.raises(Exception, match="no_such_exact_kind_here"):
        exact.run(conv, np.ones((1, 1)), None, dloss=1.0, dout=np.ones((1, 1)))


# ---------------------------------------------------------------- the exact sweep against the bounds

SWEEP_IDS = range(0, 120)  # the first cases of the default sweep; those without exact forwards are skipped
SWEEP_CASES = 24
SWEEP_NODES = 10_000


@pytest.mark.parity
def test_every_implementation_stays_under_its_bound_against_the_exact_values(frameworks):
    """For a few dozen small cases (and the seed network in both dtypes), every tensor of manual_bp, torch and
    JAX is within the case's bound of the exact value, measured with the tolerance's own S."""
    from crosscheck import cases
    from crosscheck.run.exact_sweep import exact_case

    checked, excess = [], []
    todo = [cases.seed_case("float64"), cases.seed_case("float32")]
    for c in (*todo, *(cases.case(i) for i in SWEEP_IDS)):
        if len(checked) >= SWEEP_CASES + 2:
            break
        got = exact_case(c, frameworks, max_nodes=SWEEP_NODES)
        if isinstance(got, str):
            continue
        checked.append(c.case_id)
        excess += [
            f"case {x.case_id} ({x.dtype}) {x.mode} {x.name} [{x.implementation}]: "
            f"{max(x.err_max, x.err_norm):.3e} > {x.bound:.1e}; replay: {c.replay}"
            for x in got
            if not x.ok
        ]
    assert len(checked) >= 12, f"only {checked} had exact forwards and were small enough"
    assert not excess, "\n".join(excess)


def test_a_tiny_convolution_and_its_pools_by_hand():
    """A 1-channel 3x3 image, a 2x2 kernel, stride 1, padding 0: each output the window's dot with the kernel;
    dW[a, b] = sum_ij dout_ij x[i + a, j + b], dx the full correlation of dout with the kernel. Max pool 2x2 on a
    tie takes the first maximum (row-major); average pool without counting padding divides by the window met."""
    x = np.arange(9.0).reshape(1, 1, 3, 3) - 4  # [[-4 -3 -2] [-1 0 1] [2 3 4]]
    W = np.array([[[[1.0, -2.0], [0.5, 3.0]]]])
    conv = LayerSpec(
        "0",
        "conv2d",
        {
            "in_channels": 1,
            "out_channels": 1,
            "kernel_size": (2, 2),
            "stride": (1, 1),
            "padding": (0, 0),
            "dilation": (1, 1),
            "groups": 1,
            "bias": True,
        },
        {"W": W, "b": np.array([0.25])},
    )
    dout = np.array([[[[1.0, -1.0], [2.0, 0.5]]]])
    got = exact.run(NetSpec((conv,), None, "float64"), x, None, dloss=1.0, dout=dout)["vjp"]
    xs, k, d = x[0, 0], W[0, 0], dout[0, 0]
    want = [[float((xs[i : i + 2, j : j + 2] * k).sum()) + 0.25 for j in range(2)] for i in range(2)]
    dW = [[float((d * xs[a : a + 2, b : b + 2]).sum()) for b in range(2)] for a in range(2)]
    dx = np.zeros((3, 3))
    for i in range(2):
        for j in range(2):
            dx[i : i + 2, j : j + 2] += d[i, j] * k
    _close(got["0.out"], want, "conv out")
    _close(got["0.dW"], dW, "conv dW")
    _close(got["0.db"], [d.sum()], "conv db")
    _close(got["0.dx"], dx, "conv dx")

    tie = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])
    pool = LayerSpec(
        "0", "max_pool2d", {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1)}
    )
    got = exact.run(NetSpec((pool,), None, "float64"), tie, None, dloss=1.0, dout=np.full((1, 1, 1, 1), 7.0))["vjp"]
    _close(got["0.out"], [5], "max")
    _close(got["0.dx"], [0, 7, 0, 0], "max dx: the first maximum")
    avg = LayerSpec(
        "0", "avg_pool2d", {"kernel_size": (2, 2), "stride": (2, 2), "padding": (1, 1), "count_include_pad": False}
    )
    got = exact.run(NetSpec((avg,), None, "float64"), tie, None, dloss=1.0, dout=np.ones((1, 1, 2, 2)))["vjp"]
    _close(got["0.out"], [1, 5, 5, 2], "average over the entries met")


def test_causal_attention_by_hand():
    """One head, D = 1, identity projections, causal: out_0 = x_0, out_1 = softmax(x_1 x_0, x_1 x_1) . (x_0, x_1)."""
    one = np.ones((1, 1))
    layer = LayerSpec(
        "0",
        "multi_head_attention",
        {"embed_dim": 1, "num_heads": 1, "bias": False, "causal": True},
        {"Wq": one, "Wk": one, "Wv": one, "Wo": one},
    )
    x = np.array([[[0.5], [-1.5]]])
    got = exact.run(NetSpec((layer,), None, "float64"), x, None, dloss=1.0, dout=np.ones_like(x))["vjp"]
    with mp.workdps(60):
        x0, x1 = mpmath.mpf(0.5), mpmath.mpf(-1.5)
        e0, e1 = mpmath.exp(x1 * x0), mpmath.exp(x1 * x1)
        _close(got["0.out"], [x0, (e0 * x0 + e1 * x1) / (e0 + e1)], "attention out")

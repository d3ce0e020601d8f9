"""Layers: thin classes over the pairs in ``manual_bp.functional``.

A layer validates its input, calls the forward pair, keeps the cache, and in
``backward`` hands the cache to the backward pair and stores the parameter
gradients in ``self.grads`` (overwritten, never accumulated). The math is not
repeated here. Hyperparameters are plain attributes, listed by ``config()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from manual_bp import functional as F
from manual_bp._checks import (
    StateError,
    check_dout,
    check_dtype_arg,
    check_float_array,
    check_min_ndim,
    check_nonempty,
    check_same_dtype,
)
from manual_bp.init import as_generator, get_initializer


class Module:
    """Base class: ``forward(x) -> out`` then ``backward(dout) -> dx``.

    ``params`` and ``grads`` map names ("W", "b") to arrays; optimisers update
    ``params`` in place. ``training`` switches train/eval behaviour where a
    layer has any. ``name`` is set by the containing ``Sequential`` and appears
    in error messages.
    """

    kind: ClassVar[str] = ""
    min_ndim: ClassVar[int] = 0
    registry: ClassVar[dict[str, type[Module]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Module.registry[cls.kind] = cls

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self.training = True
        self.name = ""
        self._cache: Any = None
        self._out: tuple[tuple[int, ...], np.dtype] | None = None

    # -- to be provided by each layer
    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        raise NotImplementedError

    def _check_input(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        check_min_ndim(x, self.min_ndim, self.where)
        check_nonempty(x, self.where)
        return x

    def config(self) -> dict[str, Any]:
        """Hyperparameters as plain data; ``type(layer)(**layer.config())`` rebuilds the layer."""
        return {}

    # -- shared machinery
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name; updated in place by optimisers."""
        return self._params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dL/d(param) by the same names, filled by ``backward``."""
        return self._grads

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved with the model (e.g. running statistics)."""
        return self._buffers

    @property
    def where(self) -> str:
        """How error messages name this layer, e.g. ``Linear '0'``."""
        cls = type(self).__name__
        return f"{cls} {self.name!r}" if self.name else cls

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output and keep what backward needs.

        A forward that raises leaves no cache behind: ``backward`` then raises ``StateError``
        instead of returning the gradient of an earlier call.
        """
        self._cache, self._out = None, None
        x = self._check_input(x)
        out, self._cache = self._forward(x)
        self._out = (out.shape, out.dtype)
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Return dL/dx for dout = dL/d(out); fill ``self.grads``.

        ``input_grad=False``: only the parameter gradients are needed (the first
        layer in training); a layer that can skip dx (Linear) then returns None.
        """
        if self._out is None:
            raise StateError(f"{self.where}: backward() called before forward()")
        check_dout(dout, *self._out, self.where)
        self._grads.clear()  # free the last step's gradients before the new ones are allocated
        if input_grad:
            return self._backward(dout, self._cache)
        return self._param_backward(dout, self._cache)

    def _param_backward(self, dout: np.ndarray, cache: Any) -> np.ndarray | None:
        """The parameter gradients only; layers that can save work by skipping dx override this."""
        return self._backward(dout, cache)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it, in execution order (containers first)."""
        yield self

    def zero_grad(self) -> None:
        """Drop the gradients of the last ``backward`` (they are overwritten, never accumulated)."""
        self._grads.clear()

    def train(self, mode: bool = True) -> Module:
        """Switch to training mode (``mode=False``: evaluation mode)."""
        self.training = mode
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode."""
        return self.train(False)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Linear(Module):
    """Fully connected layer: out = x @ W + b, W of shape (in_features, out_features).

    x: (N, *, in_features) -> out: (N, *, out_features). ``init`` names the
    weight initialiser (see ``manual_bp.init``; default: torch's uniform), the
    bias uses torch's uniform with fan_in = in_features.
    """

    kind = "linear"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
        init: str = "torch",
    ) -> None:
        super().__init__()
        for n, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Linear: {n} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.bias, self.init = bool(bias), init
        self.dtype = check_dtype_arg(dtype, "Linear")
        gen = as_generator(rng, "Linear")
        D, M = self.in_features, self.out_features
        self.params["W"] = get_initializer(init, "Linear")(gen, (D, M), D, M, self.dtype)
        if self.bias:
            self.params["b"] = get_initializer("torch", "Linear")(gen, (M,), D, M, self.dtype)

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "dtype": self.dtype.name,
            "init": self.init,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        check_min_ndim(x, 2, self.where)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self.where}: expected input (N, ..., {self.in_features}), got shape {x.shape}: "
                f"the last axis must hold in_features={self.in_features}"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.linear_forward(x, self.params["W"], self.params.get("b"))

    def _backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True) -> np.ndarray | None:
        dx, dW, db = F.linear_backward(dout, cache) if need_dx else F.linear_backward(dout, cache, need_dx=False)
        self.grads["W"] = dW
        if db is not None:
            self.grads["b"] = db
        return dx

    def _param_backward(self, dout: np.ndarray, cache: Any) -> None:
        return self._backward(dout, cache, need_dx=False)  # skips the product dout @ W.T


class _Elementwise(Module):
    """A parameter-free layer defined by a functional pair and its keyword hyperparameters."""

    _fwd: ClassVar[Callable[..., tuple[np.ndarray, Any]]]
    _bwd: ClassVar[Callable[[np.ndarray, Any], np.ndarray]]

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return type(self)._fwd(x, **self.config())

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return type(self)._bwd(dout, cache)


def _check_number(where: str, name: str, value: Any, positive: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{where}: {name} must be {need}, got {value!r}")
    return float(value)


class Identity(_Elementwise):
    """out = x."""

    kind = "identity"
    _fwd, _bwd = F.identity_forward, F.identity_backward


class ReLU(_Elementwise):
    """out = max(x, 0); ReLU'(0) = 0."""

    kind = "relu"
    _fwd, _bwd = F.relu_forward, F.relu_backward


class LeakyReLU(_Elementwise):
    """out = x if x > 0 else negative_slope * x; derivative at 0 is negative_slope."""

    kind = "leaky_relu"
    _fwd, _bwd = F.leaky_relu_forward, F.leaky_relu_backward

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _check_number("LeakyReLU", "negative_slope", negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """out = x if x > 0 else alpha * (exp(x) - 1); derivative at 0 is alpha."""

    kind = "elu"
    _fwd, _bwd = F.elu_forward, F.elu_backward

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _check_number("ELU", "alpha", alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(_Elementwise):
    """out = 1 / (1 + exp(-x))."""

    kind = "sigmoid"
    _fwd, _bwd = F.sigmoid_forward, F.sigmoid_backward


class Tanh(_Elementwise):
    """out = tanh(x)."""

    kind = "tanh"
    _fwd, _bwd = F.tanh_forward, F.tanh_backward


class SiLU(_Elementwise):
    """out = x * sigmoid(x) (also called swish)."""

    kind = "silu"
    _fwd, _bwd = F.silu_forward, F.silu_backward


class Softplus(_Elementwise):
    """out = log(1 + exp(beta x)) / beta, and x where beta x > threshold (torch's definition)."""

    kind = "softplus"
    _fwd, _bwd = F.softplus_forward, F.softplus_backward

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = _check_number("Softplus", "beta", beta, positive=True)
        self.threshold = _check_number("Softplus", "threshold", threshold)

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class GELU(_Elementwise):
    """out = x * Phi(x) (approximate="none", erf) or its tanh approximation (approximate="tanh")."""

    kind = "gelu"
    _fwd, _bwd = F.gelu_forward, F.gelu_backward

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class Softmax(_Elementwise):
    """Softmax along the last axis: x (*, C) -> p (*, C), rows summing to 1."""

    kind = "softmax"
    min_ndim = 1
    _fwd, _bwd = F.softmax_forward, F.softmax_backward


class LogSoftmax(_Elementwise):
    """Log-softmax along the last axis: x (*, C) -> x - logsumexp(x) (*, C)."""

    kind = "log_softmax"
    min_ndim = 1
    _fwd, _bwd = F.log_softmax_forward, F.log_softmax_backward


# ---------------------------------------------------------------- normalisation, dropout, embedding, reshaping


def _check_features(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_last_dim(x: np.ndarray, D: int, where: str, layout: str) -> None:
    if x.shape[-1] != D:
        raise ValueError(f"{where}: expected input {layout}, got shape {x.shape}: the last axis must hold {D} features")


class _Norm(Module):
    """Shared set-up of LayerNorm and BatchNorm1d: gamma = 1 and beta = 0 when affine."""

    def __init__(self, D: int, eps: float, affine: bool, dtype: Any) -> None:
        super().__init__()
        where = type(self).__name__
        self.eps = _check_number(where, "eps", eps, positive=True)
        self.dtype = check_dtype_arg(dtype, where)
        if affine:
            self.params["gamma"] = np.ones(D, self.dtype)
            self.params["beta"] = np.zeros(D, self.dtype)

    def _check_norm_input(self, x: Any, D: int, ndim: int, layout: str) -> np.ndarray:
        check_float_array(x, self.where)
        check_min_ndim(x, ndim, self.where)
        _check_last_dim(x, D, self.where, layout)
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _store_grads(self, dgamma: np.ndarray | None, dbeta: np.ndarray | None) -> None:
        if dgamma is not None:
            self.grads["gamma"] = dgamma
        if dbeta is not None:
            self.grads["beta"] = dbeta


class LayerNorm(_Norm):
    """Normalise each sample over its last axis: out = (x - mean) / sqrt(var + eps) * gamma + beta.

    x: (N, *, normalized_shape) -> out: same shape. Biased variance, as torch's
    ``nn.LayerNorm(normalized_shape, eps, elementwise_affine)``; gamma, beta: (D,).
    """

    kind = "layer_norm"

    def __init__(
        self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True, *, dtype: Any = np.float64
    ) -> None:
        D = _check_features("LayerNorm", "normalized_shape", normalized_shape)
        super().__init__(D, eps, bool(elementwise_affine), dtype)
        self.normalized_shape, self.elementwise_affine = D, bool(elementwise_affine)

    def config(self) -> dict[str, Any]:
        return {"normalized_shape": self.normalized_shape, "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "dtype": self.dtype.name}

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_norm_input(x, self.normalized_shape, 1, f"(..., {self.normalized_shape})")

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.layer_norm_forward(x, self.params.get("gamma"), self.params.get("beta"), self.eps)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = F.layer_norm_backward(dout, cache)
        self._store_grads(dgamma, dbeta)
        return dx


class BatchNorm1d(_Norm):
    """Normalise each feature over the batch, as torch's ``nn.BatchNorm1d(num_features)`` on (N, D).

    Training: batch mean and biased variance normalise; the running statistics
    (``buffers["running_mean"]``, ``buffers["running_var"]``, initially 0 and 1)
    move by ``running = (1 - momentum) * running + momentum * batch`` with the
    unbiased batch variance. Evaluation: the running statistics normalise.
    x: (N, num_features) -> out: same shape; gamma, beta: (D,) when ``affine``.
    """

    kind = "batch_norm"

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, *,
        dtype: Any = np.float64,
    ) -> None:
        D = _check_features("BatchNorm1d", "num_features", num_features)
        super().__init__(D, eps, bool(affine), dtype)
        self.momentum = _check_number("BatchNorm1d", "momentum", momentum)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum!r}")
        self.num_features, self.affine = D, bool(affine)
        self.buffers["running_mean"] = np.zeros(D, self.dtype)
        self.buffers["running_var"] = np.ones(D, self.dtype)

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "dtype": self.dtype.name}

    def _check_input(self, x: Any) -> np.ndarray:
        D = self.num_features
        self._check_norm_input(x, D, 2, f"(N, {D})")
        if x.ndim != 2:
            raise ValueError(f"{self.where}: expected input (N, {D}), got shape {x.shape}; flatten other axes first")
        if self.training and x.shape[0] < 2:
            raise ValueError(
                f"{self.where}: training needs more than one sample per feature, got input shape {x.shape}; "
                f"pass a batch of N >= 2 or call eval() to use the running statistics"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        b = self.buffers
        out, cache, (mean, var) = F.batch_norm_forward(
            x, self.params.get("gamma"), self.params.get("beta"), b["running_mean"], b["running_var"],
            self.training, self.momentum, self.eps,
        )
        if self.training:  # in place: state_dict() and optimisers hold these very arrays
            np.copyto(b["running_mean"], mean)
            np.copyto(b["running_var"], var)
        return out, cache

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = F.batch_norm_backward(dout, cache)
        self._store_grads(dgamma, dbeta)
        return dx


class Dropout(Module):
    """Inverted dropout: in training, out = x * keep / (1 - p) with keep ~ Bernoulli(1 - p); identity in eval.

    The keep mask is drawn from ``rng`` (an explicit ``np.random.Generator`` or
    seed) on every training forward and kept in ``self.mask`` (bool, x's shape).
    With ``frozen = True`` the next training forwards reuse ``self.mask`` instead
    of drawing (finite differences and cross-checks need a fixed mask).
    0 <= p < 1; p = 0 keeps everything.
    """

    kind = "dropout"

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = _check_number("Dropout", "p", p)
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r} (p = 1 would drop every unit)")
        self.rng = as_generator(rng, "Dropout")
        self.mask: np.ndarray | None = None
        self.frozen = False

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if not self.training:
            return F.dropout_forward(x, None, self.p)
        if self.frozen:
            if self.mask is None or self.mask.shape != x.shape:
                got = None if self.mask is None else self.mask.shape
                raise ValueError(f"{self.where}: frozen mask of shape {got} does not fit input shape {x.shape}")
        elif self.p == 0.0:
            self.mask = np.ones(x.shape, dtype=bool)
        else:
            self.mask = self.rng.random(x.shape) >= self.p  # P(keep) = 1 - p
        return F.dropout_forward(x, self.mask, self.p)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return F.dropout_backward(dout, cache)


class Embedding(Module):
    """A lookup table: integer indices (N, *) -> rows of W, (N, *, embedding_dim).

    W: (num_embeddings, embedding_dim), torch's layout, initialised N(0, 1) as
    torch does. Gradients accumulate over repeated indices; ``backward`` returns
    None (there is no gradient with respect to integer indices).
    """

    kind = "embedding"

    def __init__(
        self, num_embeddings: int, embedding_dim: int, *, rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        self.num_embeddings = _check_features("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _check_features("Embedding", "embedding_dim", embedding_dim)
        self.dtype = check_dtype_arg(dtype, "Embedding")
        gen = as_generator(rng, "Embedding")
        self.params["W"] = gen.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)

    def config(self) -> dict[str, Any]:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim, "dtype": self.dtype.name}

    def _check_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu":
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(
                f"{self.where}: indices must be an integer numpy.ndarray, got {got}; "
                f"convert explicitly, e.g. idx.astype(np.int64)"
            )
        check_min_ndim(x, 1, self.where, "indices")
        check_nonempty(x, self.where, "indices")
        V = self.num_embeddings
        bad = (x < 0) | (x >= V)
        if np.any(bad):
            raise ValueError(
                f"{self.where}: index {x[bad].flat[0]} out of range [0, {V}) in indices of shape {x.shape}; "
                f"num_embeddings={V}"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.embedding_forward(x, self.params["W"])

    def _backward(self, dout: np.ndarray, cache: Any) -> None:  # type: ignore[override]
        self.grads["W"] = F.embedding_backward(dout, cache)
        return None


class Flatten(Module):
    """x (N, d1, ..., dk) -> (N, d1 * ... * dk), as torch's ``nn.Flatten()``."""

    kind = "flatten"
    min_ndim = 2

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.flatten_forward(x)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return F.flatten_backward(dout, cache)

"""Every forward/backward pair of manual_bp in one namespace: ``from manual_bp import functional as F``.

Placement rule: a layer's pair sits in its family's module, above the layer's class
(activations, norm, layers, model, conv, pool, attention, losses); this module only re-exports them.

Every layer is a pair::

    out, cache = <name>_forward(x, ...)
    dx[, dW, db] = <name>_backward(dout, cache)

``dout`` is dL/d(out), the gradient of a scalar loss L with respect to the
pair's output, with the output's shape; a loss's backward takes ``dloss``
instead. The cache holds exactly what backward reads. No pair mutates its
arguments, and every result keeps the dtype of ``x`` (float32 or float64):
constants are Python floats, which NumPy treats as weak scalars. Shapes: ``N``
is the batch, ``*`` any further leading axes, ``D`` features in, ``M``
features out, ``C`` classes (the last axis).

The layers call the pairs in their family modules: to plant a bug in a layer,
patch the pair there (``manual_bp.layers.linear_backward``), not here.
"""

from __future__ import annotations

from manual_bp.activations import (
    elu_backward,
    elu_forward,
    gelu_backward,
    gelu_forward,
    identity_backward,
    identity_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax_backward,
    log_softmax_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    softmax_backward,
    softmax_forward,
    softplus_backward,
    softplus_forward,
    tanh_backward,
    tanh_forward,
)
from manual_bp.attention import (
    mha_backward,
    mha_forward,
)
from manual_bp.conv import (
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from manual_bp.layers import (
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    flatten_backward,
    flatten_forward,
    linear_backward,
    linear_forward,
)
from manual_bp.losses import (
    bce_with_logits_backward,
    bce_with_logits_forward,
    huber_backward,
    huber_forward,
    l1_backward,
    l1_forward,
    mse_backward,
    mse_forward,
    multi_margin_backward,
    multi_margin_forward,
    nll_backward,
    nll_forward,
    smooth_l1_backward,
    smooth_l1_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from manual_bp.model import (
    residual_backward,
    residual_forward,
)
from manual_bp.norm import (
    batch_norm_backward,
    batch_norm_forward,
    layer_norm_backward,
    layer_norm_forward,
    rms_norm_backward,
    rms_norm_forward,
)
from manual_bp.norm2d import (
    batch_norm2d_backward,
    batch_norm2d_forward,
    group_norm_backward,
    group_norm_forward,
    instance_norm2d_backward,
    instance_norm2d_forward,
)
from manual_bp.pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool1d_backward,
    avg_pool1d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool1d_backward,
    max_pool1d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from manual_bp.recurrent import (
    cell_backward,
    cell_forward,
    recurrent_backward,
    recurrent_forward,
    recurrent_layer_backward,
    recurrent_layer_forward,
    step_backward,
    step_forward,
)

__all__ = [
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "avg_pool1d_backward",
    "avg_pool1d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm2d_backward",
    "batch_norm2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "cell_backward",
    "cell_forward",
    "conv1d_backward",
    "conv1d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "dropout_backward",
    "dropout_forward",
    "elu_backward",
    "elu_forward",
    "embedding_backward",
    "embedding_forward",
    "flatten_backward",
    "flatten_forward",
    "gelu_backward",
    "gelu_forward",
    "group_norm_backward",
    "group_norm_forward",
    "huber_backward",
    "huber_forward",
    "identity_backward",
    "identity_forward",
    "instance_norm2d_backward",
    "instance_norm2d_forward",
    "l1_backward",
    "l1_forward",
    "layer_norm_backward",
    "layer_norm_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "mha_backward",
    "mha_forward",
    "mse_backward",
    "mse_forward",
    "multi_margin_backward",
    "multi_margin_forward",
    "nll_backward",
    "nll_forward",
    "recurrent_backward",
    "recurrent_forward",
    "recurrent_layer_backward",
    "recurrent_layer_forward",
    "relu_backward",
    "relu_forward",
    "residual_backward",
    "residual_forward",
    "rms_norm_backward",
    "rms_norm_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "silu_backward",
    "silu_forward",
    "smooth_l1_backward",
    "smooth_l1_forward",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "softmax_forward",
    "softplus_backward",
    "softplus_forward",
    "step_backward",
    "step_forward",
    "tanh_backward",
    "tanh_forward",
]

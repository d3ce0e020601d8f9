"""The longest reduction in a case: the K of the float32 bound (``crosscheck.tolerance.bound``)."""

from __future__ import annotations

import numpy as np

from crosscheck.kinds import lookup
from crosscheck.spec import NetSpec, walk


def reduction_length(spec: NetSpec, x: np.ndarray) -> int:
    """The longest sum in the case: the rows summed into dW, db or a batch statistic, the input's features,
    and each kind's own lengths (``Kind.lengths``: a Linear's features, a norm's width, a convolution's
    window C_in / groups kH kW and its N H_out W_out positions), the image shape carried layer to layer."""
    rows = int(np.prod(x.shape[:-1])) if np.asarray(x).dtype.kind == "f" else int(np.size(x))
    widths = [x.shape[-1]]
    # (N, C, H, W) or (N, C, L) while the layers are convolutions or pools (other kinds pass it on unread)
    image = tuple(x.shape) if x.ndim in (3, 4) else None
    for layer in walk(spec.layers):
        more, image = lookup(layer.kind).lengths(layer, image)
        widths += more
    return max(rows, *widths)

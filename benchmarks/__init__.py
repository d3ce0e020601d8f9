"""Speed and memory of manual_bp against torch eager, JAX (jit and eager) and a NumPy GEMM floor.

``python -m benchmarks`` times one training step per config, dtype and
framework, each in its own process with the same thread count, and reports
medians and ratios; ``python -m benchmarks.depth`` compares backprop with
finite differences as depth and width grow. See benchmarks/README.md.
"""

"""The tolerance: the bound of a case (``bound``), one tensor's check (``check``), the term sizes it is
measured against (``scales``) and the longest reduction (``reduction_length``). See docs/tolerance.md."""

from __future__ import annotations

from crosscheck.tolerance.bounds import EPS, FLOAT32_SAFETY, FLOAT64_BOUND, TensorCheck, bound, check
from crosscheck.tolerance.lengths import reduction_length
from crosscheck.tolerance.scales import scales

__all__ = ["EPS", "FLOAT32_SAFETY", "FLOAT64_BOUND", "TensorCheck", "bound", "check", "reduction_length", "scales"]

"""Running crosscheck: compare one case (``compare``), the API (``api``), the CLI (``cli``), the
report (``report``) and the training trajectories (``trajectory``)."""

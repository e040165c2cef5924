"""The benchmarks: scripts that print figures (never asserted by the tests), run from the repository root as
modules (``python -m benchmarks.maskbench_passing ...``), and shared helpers they import from one another."""

"""Benchmarks that run txpipe beside its baselines on the same local stack and data, and print ratios.

`python -m benchmarks [--quick] [--json PATH]`; see benchmarks/README.md for what each one measures,
how each baseline maps to the seed or tool it stands for, and the last results.
"""

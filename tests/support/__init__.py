"""What tests and benchmarks share: helpers with no test in them (no test module imports another)."""

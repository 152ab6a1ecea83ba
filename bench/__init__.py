"""Benchmarks: each ringlog path against the raw client on the same broker, in one run."""

"""Benchmarks (`make bench`): passthrough latency/throughput vs direct and nginx, async passthrough overhead.

Not collected by pytest (no test_*.py files here): a benchmark, not a test. Results go to RESULTS.md.
"""

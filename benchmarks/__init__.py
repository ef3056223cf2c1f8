"""Throughput and latency benchmarks for crackq (`python -m benchmarks.run`, `make bench`)."""

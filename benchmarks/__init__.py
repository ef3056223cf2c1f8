"""Benchmark suites for crackq behind one entry point: `python -m benchmarks.run [--suite NAME]`."""

"""Benchmarks: `python -m benchmarks` prints measured speeds as ratios against same-run baselines."""

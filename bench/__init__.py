"""Benchmark harness: `make bench` (see run.py). Not part of the shipped package."""

"""Benchmark harness: several methods, one protocol (k-fold, leave-site-out, cross-dataset), the papers' tables.

config: the benchmark YAML; protocol: the folds; run: train -> segment -> evaluate per
(method, fold), resumable; tables and plots: the results. See docs/benchmark.md.
"""

"""The performance benchmark of issue 5: ``python -m benchmarks.run`` (see README, "Performance")."""

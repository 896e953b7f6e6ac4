"""Side-by-side performance benchmark of durable-state-store (issue 6): `python -m benchmarks.run`."""

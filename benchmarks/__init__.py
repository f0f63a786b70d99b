"""mmtui benchmarks: `python -m benchmarks.run --out benchmarks/results` (see README.md)."""

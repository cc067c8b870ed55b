"""The benchmarks: scripts that measure mscmt through its library (run from the repository root as ``python -m benchmarks.<name>``)."""

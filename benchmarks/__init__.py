"""Benchmarks: the orchestrator against a plain Ray Tune script and Optuna on the same search, and a quality study.

`python -m benchmarks.harness --size cpu` prints and writes the comparison table (see harness.py);
`python -m benchmarks.quality` compares ASHA + TPE against random search without early stopping.
"""

"""Test helpers for cluster runs, faults and bad input (not tests themselves).

- :mod:`slurm.cluster`: start and stop a one-node SLURM cluster (``python tests/slurm/cluster.py``).
- :mod:`slurm.runs`: run the benchmark workflow on its test config in a scratch folder.
"""

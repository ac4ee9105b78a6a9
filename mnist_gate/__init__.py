"""The machinery behind the gate, a module per concern.

- paths: where things live, and the run folder (claimed by one run, written whole or marked).
- data: MNIST from the shipped IDX files, verified byte for byte.
- networks: the one registry from a name to a network class in model.py; parameter counts.
- tracer: what a network computes, measured by running copies of it.
- budgets: the budgets and seeds (pyproject.toml) and the rules on a run's numbers; no torch.
- checks: the structural rules, decided on what the tracer measured.
- stats: intervals, bounds and the paired test behind the verdict; standard library only.
- verdict: the verdict over a gate's runs and the Markdown people read; no torch.
- report: the files beside a run (curves, errors, model summary) and the README's tables.
"""

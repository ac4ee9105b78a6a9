"""The machinery behind the gate, a module per concern.

- paths: where things live, and the run folder (claimed by one run, written whole or marked).
- data: MNIST from the shipped IDX files, verified byte for byte.
- networks: the one registry from a name to a network class in model.py; parameter counts.
- tracer: what one forward pass actually runs, and the receptive field it sees.
- checks: the budgets (pyproject.toml) and the rules that enforce them.
- report: run summaries, curves, model summaries, the README's generated tables.
"""

"""The machinery behind the gate, a module per concern.

No torch:
- paths: where things live, and the run folder (claimed by one run, written whole or marked).
- budgets: the budgets and seeds ([tool.gate] in pyproject.toml) and the rules on a run's numbers.
- settings: settings that carry their own constraints, profiles, the generated command line.
- record: a run's record (metrics.json): its schema, version and loading.
- stats: intervals, bounds and the paired test behind the verdict.
- verdict: judge(), the one verdict on a profile's runs, and the Markdown people read.

With torch:
- data: MNIST from the shipped IDX files, verified byte for byte.
- images: the input convention, the augmentation's sampling grid, evaluate().
- networks: the one registry from a name to a network class in model.py; parameter counts.
- runtime: device, threads and seed; where a run ran; saving it whole.
- graphs: an epoch's training steps replayed from CUDA graphs.
- tracer: what a network computes, measured by running copies of it.
- checks: RULES, the structural rules, decided on what the tracer measured.
- gate: the one path from a profile to what the verdict judges (train.py's recipe, every seed).
- report: the files beside a run (summary, curves, errors, model table).
- readme: the README's generated tables and ARCHITECTURE.md.
"""

"""The machinery behind the gate, a module per concern. train.py and the tests use it; nothing here
imports train.py.

No torch:
- paths: where things live; files written whole, read with a bound, locked.
- settings: settings that carry their own constraints, and the generated command line.
- profiles: a profile (its budget, recipe and seeds, [tool.gate] in pyproject.toml read once) and
  the rules on a run's numbers.
- record: a run's record (metrics.json): its schema and version.
- runfolder: a run's folder: its file names, claiming it, saving and reading each file.
- stats: intervals, bounds and the tests behind the verdict.
- rates: the error rates of the verdict's rules, worked out, and the seed counts they need.
- judging: judge(), the one verdict on a profile's runs, and the regression check's judgement.
- markdown: the verdict as people read it.
- verdict: the CI verdict job: gather the runs, judge them, print the job summary.
- key: the key of what decides a gate result, which records carry and CI stores main's runs by.

With torch:
- data: MNIST from the shipped IDX files, verified byte for byte.
- images: the input convention, the augmentation's sampling grid, evaluate().
- networks: the one registry from a name to a network class in model.py; parameter counts.
- runtime: device, threads and seed; where a run ran, in its record.
- graphs: an epoch's training steps replayed from CUDA graphs.
- tracer: what a network computes, measured by running copies of it.
- checks: RULES, the structural rules, decided on what the tracer measured.
- gate: the slow tier's verdict over seeds, and the checkpoint check.
- report: the files beside a run (summary, curves, errors, model table).
- readme: the README's generated tables and ARCHITECTURE.md.
"""

"""The documents' generated sections (the README's budgets, rules, networks, error rates, options
and results, ARCHITECTURE.md, the CI flags in docs/operations.md), each from the one place that
defines it.

    python -m scripts.readme                    # everything but the results
    python -m scripts.readme results/*/*        # and the results table, from those runs

A fast test fails when a section drifts from the code or pyproject.toml.
"""

import argparse
import dataclasses
import functools
import importlib
import re
import statistics
from pathlib import Path

from torch import nn

import train
from mnist_gate import checks, judging, networks, paths, profiles, rates, settings, stats
from mnist_gate.markdown import ReportError, table
from mnist_gate.profiles import Gate
from mnist_gate.record import Record
from mnist_gate.report import layer_table
from mnist_gate.tracer import Probe, probe
from mnist_gate.verdict import load_runs


def budgets_table(gate: Gate) -> str:
    rows = [
        (f"`{p.name}`", f"`model.{p.model}`", f"< {p.max_params:,}", f"<= {p.max_epochs}",
         f">= {p.min_accuracy:.2%}",
         ", ".join(f"`{k} = {v}`" for k, v in p.train.items()) or "train.py's defaults")
        for p in gate.profiles.values()
    ]  # fmt: skip
    header = ("profile", "model", "trainable parameters", "epochs", "final-epoch test accuracy",
              "trains with")  # fmt: skip
    return table(header, rows)


def rates_table(gate: Gate) -> str:
    """Each decision's rule at the seed counts the gate uses, with its error rates both ways,
    worked out by mnist_gate.rates at the spread the gate is sized for."""
    honest, under = f"{rates.HONEST:.3f}%", f"{rates.BAR - rates.UNDER:.2f}%"
    local, ci, reference = (len(gate.seeds(where)) for where in profiles.WHERE)
    named = {local: "`local`", ci: "`ci`", reference: "`reference`"}
    rows = []
    for n in sorted({1, local, 3, rates.bound_seeds(), ci, reference}):
        fails, passes = rates.budget_rates(n)
        rows.append((f"budget, {n} seed{'s' if n > 1 else ''} {named.get(n, '')}".strip(),
                     f"{rates.budget_rule(n)} >= the bar", f"fails {judging.chance(fails)}",
                     f"passes {judging.chance(passes)}"))  # fmt: skip
    n = len(gate.profiles)
    if gate.regression:
        worst = max(rates.blocks(ci, reference, n, drop=0.0, wider=w) for w in (0.5, 1, 2, 3))
        rows.append((
            f"regression, {ci} seeds against {reference}", f"Hsu's test at {rates.alpha(n):.2%} "
            f"a profile ({n} profiles)", f"blocks {judging.chance(n * worst)} at most, at any "
            "spread from 0.5 to 3 times main's",
            f"a {rates.DROP}-point drop: caught {judging.chance(rates.blocks(ci, reference, n))}",
        ))  # fmt: skip
    else:
        rows.append(("regression", "off ([tool.gate] regression = false)", "", ""))
    header = ("decision", "rule", f"a recipe of mean {honest} (`Net`)", f"a recipe of mean {under}")
    return (
        table(header, rows) + f"\n\nAt {rates.SEED_SD} points of spread a seed and a bar of "
        f"{rates.BAR:.2f}%; `mnist_gate/rates.py` works each out, `tests/test_rates.py` checks it."
    )


# The commands whose flags the options tables list, each with a command_line() parser; CI's own
# flags (those CI_FLAGS names) go in docs/operations.md, every other in the README.
COMMANDS = ("mnist_gate.verdict", "mnist_gate.report", "scripts.readme", "scripts.benchmark",
            "scripts.steptime", "scripts.make_mnist", "mnist_gate.key",
            "mnist_gate.profiles")  # fmt: skip
CI_FLAGS = {
    "mnist_gate.verdict": {"--main-note", "--main-about", "--budgets", "--change-budgets", "--jobs",
                           "--seeds-from", "--tree", "--reused", "--keep"},
    "mnist_gate.key": None,  # all of them
    "mnist_gate.profiles": None,
}  # fmt: skip


def default(value) -> str:
    """A default as the options tables show it: on or off, a path from the repository's root."""
    if value is None or value is argparse.SUPPRESS:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Path) and value.is_relative_to(paths.ROOT):
        value = value.relative_to(paths.ROOT) if value != paths.ROOT else "."
    return f"`{value}`"


def flags(ci: bool) -> list[tuple]:
    """(command, flag, default, help) of every command's flags: CI's own, or everyone else's."""
    rows = []
    for module in COMMANDS:
        ci_only = CI_FLAGS.get(module, set())
        for action in importlib.import_module(module).command_line()._actions:
            name = ", ".join(action.option_strings) or action.dest
            if isinstance(action, argparse._HelpAction) or not action.option_strings and not ci:
                continue  # positional arguments: --help says them
            if (ci_only is None or name in ci_only) is ci:
                rows.append((f"`python -m {module}`", f"`{name}`", default(action.default),
                             action.help or ""))  # fmt: skip
    return rows


def options_table(gate: Gate) -> str:
    """Every setting a user gives: train.py's (the recipe's through --help), the pytest session's
    with their environment variables, the [tool.gate] keys and every command's flags."""
    rows = [
        ("`python train.py`", f"`{settings.flag(f.name)}`", default(f.default), f.metadata["help"])
        for f in dataclasses.fields(train.Config)
        if not f.metadata["recipe"]
    ]
    rows.append(("`python train.py`", "`--epochs`, `--lr`, ...", "the profile's, else train.py's",
                 "the recipe: `python train.py --help` lists every setting"))  # fmt: skip
    rows += [("`pytest`", f"`{o.flag}`, `{o.env}`", o.default, o.help) for o in profiles.SESSION]
    rows.append(("`pytest -n auto`", "`PYTEST_XDIST_AUTO_NUM_WORKERS`",
                 "a worker per run, as the machine allows", "the slow tier's workers"))  # fmt: skip
    rows += [("`pyproject.toml`", f"`[tool.gate] {key}`", without, what)
             for key, (without, what) in profiles.KEYS.items()]  # fmt: skip
    rows += flags(ci=False)
    return table(("command", "option", "default", "what it sets"), rows)


def ci_options_table(gate: Gate) -> str:
    """The flags and arguments only CI's steps give."""
    return table(("command", "option", "default", "what it sets"), flags(ci=True))


def rules_list(gate: Gate) -> str:
    return "\n".join(f"- {checks.summary(rule)}" for rule in checks.RULES)


def results_table(runs: list[Record], gate: Gate) -> str:
    """Final-epoch accuracy over seeds, one row per profile and device: min / mean / max, the
    standard deviation, the chance that one run ends under the profile's threshold (a normal fit
    to these runs), and the wall time."""
    rows = []
    for group in row_groups(runs, gate):
        first = group[0]
        threshold = gate.profiles[first.profile].min_accuracy
        spread = stats.spread([r.final_test_acc for r in group], threshold)
        below = (
            ""
            if spread.below is None
            else (f"{spread.below:.2%}" if spread.below >= 1e-4 else "< 0.01%")
        )
        walls = [r.wall_seconds for r in group]
        rows.append((
            first.model, f"{first.parameters:,}", measured(first.model)[1].rf,
            first.epochs, seed_list([r.seed for r in group]),
            f"{100 * spread.low:.2f} / {100 * spread.mean:.2f} / {100 * spread.high:.2f}",
            "" if spread.sd is None else f"{100 * spread.sd:.3f}",
            f"{below} (< {threshold:.2%})",
            f"{min(walls):.0f} / {statistics.median(walls):.0f} / {max(walls):.0f}",
            device_label(first),
        ))  # fmt: skip
    header = ("model", "params", "RF", "epochs", "seeds", "final test acc % (min / mean / max)",
              "sd", "P(one run under)", "wall s (min / median / max)", "device")  # fmt: skip
    return table(header, rows)


def row_groups(runs: list[Record], gate: Gate) -> list[list[Record]]:
    """The runs of each table row: one profile on one device, the profiles in pyproject.toml's
    order, the devices in the order their runs were given."""
    order = list(gate.profiles)
    keys = dict.fromkeys(
        (r.profile, r.device) for r in sorted(runs, key=lambda r: order.index(r.profile))
    )
    return [[r for r in runs if (r.profile, r.device) == key] for key in keys]


def device_label(run: Record) -> str:
    """A CPU's name with the threads it trained on; a GPU's name alone."""
    if run.device_type == "cpu":
        return f"{run.device} ({run.threads} threads)"
    return run.device


def seed_list(seeds: list[int]) -> str:
    """0, 1, 2, 3 as "0-3"; anything else as it is."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


@functools.cache
def measured(model: str) -> tuple[nn.Module, Probe]:
    """A network of model.py and what it computes, probed once for every table that shows it."""
    net = networks.build(model)
    return net, probe(net)


def gated_networks(gate: Gate) -> list[tuple]:
    """(profile, network, trainable parameters, its probe) of each gated profile."""
    found = []
    for profile in gate.profiles.values():
        checks.build(profile)  # a profile whose network model.py lacks is one line
        net, probed = measured(profile.model)
        found.append((profile, net, networks.count_parameters(net), probed))
    return found


def networks_table(gate: Gate) -> str:
    rows = [
        (
            f"`{p.name}`",
            f"`model.{p.model}`",
            f"{count:,}",
            f"{probed.rf}x{probed.rf}" if probed.rf else "not seen",
        )
        for p, net, count, probed in gated_networks(gate)
    ]
    return table(("profile", "network", "trainable parameters", "receptive field"), rows)


def architecture(gate: Gate) -> str:
    return "\n\n".join(
        f"## {p.model} (profile `{p.name}`)\n\n{count:,} parameters, receptive field "
        f"{probed.rf}x{probed.rf} at the classifier.\n\n{layer_table(net, probed)}"
        for p, net, count, probed in gated_networks(gate)
    )


def check_seed_runs(runs: list[Record], gate: Gate) -> None:
    """Runs that may share the results table: each trained as a profile, every run of a row
    with the same recipe, and no seed twice in a row."""
    strays = sorted({r.name for r in runs if r.profile not in gate.profiles})
    if strays:
        raise ReportError(
            f"{', '.join(strays)}: not trained as a profile in pyproject.toml "
            "(train.py --profile NAME)"
        )
    for group in row_groups(runs, gate):
        name = group[0].profile
        recipes = {repr(sorted(r.recipe.items())): r for r in group}
        if len(recipes) > 1:
            a, b = list(recipes.values())[:2]
            differ = sorted(k for k in a.recipe | b.recipe if a.recipe.get(k) != b.recipe.get(k))
            raise ReportError(
                f"the {name} runs were not trained alike: seeds {a.seed} and {b.seed} "
                f"differ in {', '.join(differ)}"
            )
        seeds = [r.seed for r in group]
        if len(set(seeds)) < len(seeds):
            raise ReportError(
                f"the {name} runs on {group[0].device} repeat a seed: {sorted(seeds)}"
            )


SECTIONS = {  # section -> (file, what it holds)
    "budgets": (paths.README, budgets_table),
    "rules": (paths.README, rules_list),
    "networks": (paths.README, networks_table),
    "rates": (paths.README, rates_table),
    "options": (paths.README, options_table),
    "ci-options": (paths.OPERATIONS, ci_options_table),
    "architecture": (paths.ARCHITECTURE, architecture),
}


def section(text: str, name: str) -> re.Match | None:
    """A generated section: the text between <!-- generated:NAME --> and its closing marker."""
    return re.search(
        rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", text, flags=re.DOTALL
    )


def replace_section(text: str, name: str, body: str) -> str:
    found = section(text, name)
    if not found:
        raise ReportError(f"no generated:{name} section to replace")
    return text[: found.end(1)] + body.strip() + "\n" + text[found.start(3) :]


def write_readme(seed_runs, gate: Gate) -> None:
    runs = load_runs(seed_runs)
    check_seed_runs(runs, gate)
    texts = {path: read(path) for path, _ in SECTIONS.values()}
    for name, (path, make) in SECTIONS.items():
        texts[path] = replace_section(texts[path], name, make(gate))
    if runs:
        table = results_table(runs, gate)
        texts[paths.README] = replace_section(texts[paths.README], "results", table)
    for path, text in texts.items():  # every section made before any file is replaced
        try:
            paths.write_text(path, text)
        except OSError as err:
            raise ReportError(f"cannot write {path} ({err.strerror})") from None


def read(path) -> str:
    """A document this command rewrites, or a ReportError in one line saying why it cannot."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot read {path} ({err.strerror}); restore it from git") from None
    except UnicodeDecodeError as err:
        raise ReportError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def command_line() -> settings.Parser:
    parser = settings.Parser(
        prog="python -m scripts.readme", description="Rewrite README.md's generated sections."
    )
    parser.add_argument("seed_runs", nargs="*", help="run folders for the results table")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    parser.run(lambda: write_readme(args.seed_runs, profiles.load()))


if __name__ == "__main__":
    main()

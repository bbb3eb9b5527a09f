"""One command-line vocabulary: a walk over every subcommand's parser, and the README's CLI claims.

How each rule was shown to fail (on a deliberately broken tree, then restored):

* ``--output-dir`` put back as the visible folder option of ``style-transfer`` -> ``test_one_spelling_per_idea``
  (dest ``out_dir`` spelled two ways, and a forbidden spelling);
* a help string ``"samples per step (default 512)"`` in ``TRAINING_SPECS`` ->
  ``test_every_default_is_shown_once`` (two defaults in one help);
* ``--time-budget`` removed from ``color-transfer`` -> ``test_training_commands_share_the_runtime_options``;
* ``cli/toy.py`` restating lambda as 2.0 over ``TOY_DEFAULTS``' 1.0 -> ``test_cli_defaults_are_the_configs[toy]``;
* ``--bf16`` added back to ``latent`` -> ``test_no_flag_is_accepted_and_ignored``;
* ``--budget 60`` back in the README -> ``test_readme_flags_exist`` (it still parses: a hidden alias).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import shlex
from pathlib import Path

import pytest

from w2gn.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[f"{prefix}{name}"] = sub
                out.update(_subparsers(sub, f"{prefix}{name} "))
    return out


PARSERS = _subparsers(build_parser())
#: commands that only dispatch to their own subcommands (``compare`` -> ``compare gaussian``)
DISPATCHERS = {"compare"}
COMMANDS = {k: v for k, v in PARSERS.items() if k not in DISPATCHERS}


def _options(parser: argparse.ArgumentParser, visible: bool = True) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, (argparse._HelpAction,))
            and (a.help != argparse.SUPPRESS) == visible]


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in _options(parser) for s in a.option_strings}


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split())


def test_walk_finds_every_command():
    assert {"fit", "gaussian", "transform", "resume", "compare gaussian", "benchmark", "color-transfer", "toy",
            "domain-adapt", "latent", "style-transfer", "style-apply", "export"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_default_is_shown_once(name):
    """Every option has help; every option that takes a value says its default exactly once (the
    formatter renders the actual default, so a value written into a help string shows up twice)."""
    parser = COMMANDS[name]
    for action in _options(parser):
        text = _help_of(parser, action)
        assert text, f"{name} {action.option_strings}: no help"
        if action.nargs == 0:  # a switch: off unless given
            assert "(default" not in text or isinstance(action, argparse.BooleanOptionalAction), (name, text)
            continue
        assert text.count("(default") == 1 or action.required or (action.default is None and text.endswith("(required)")), \
            f"{name} {action.option_strings}: {text!r}"
        if action.default is not None and not isinstance(action.default, (list, tuple)):
            assert f"(default: {action.default}" in text, f"{name} {action.option_strings}: {text!r}"


def test_one_spelling_per_idea():
    """The same destination has the same flags in every command; no old spelling is visible; a deprecated
    alias stays hidden and feeds an option its command shows."""
    spellings: dict[str, set[tuple[str, ...]]] = {}
    for name, parser in COMMANDS.items():
        for action in _options(parser):
            spellings.setdefault(action.dest, set()).add(tuple(action.option_strings))
        shown = {a.dest for a in _options(parser)}
        for alias in _options(parser, visible=False):
            assert alias.dest in shown, f"{name}: hidden alias {alias.option_strings} feeds no visible option"
        flags = _flags(parser)
        assert not flags & {"--output-dir", "--budget", "--outdir", "--output_dir"}, (name, flags)
        for action in _options(parser):
            if action.dest == "output":  # -o/--output is a file; folders are --out-dir
                assert "folder" not in action.help, (name, action.help)
    mixed = {dest: s for dest, s in spellings.items() if len(s) > 1}
    assert not mixed, mixed
    assert spellings["out_dir"] == {("--out-dir",)} and spellings["time_budget"] == {("--time-budget",)}
    clocks = {(tuple(a.choices), a.default) for p in COMMANDS.values() for a in _options(p) if a.dest == "clock"}
    assert clocks == {(("process", "wall"), "process")}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_training_commands_share_the_runtime_options(name):
    """A command that trains has --time-budget, --device, --dtype and --seed; the others only what they use."""
    flags = _flags(COMMANDS[name])
    if "--iterations" in flags:
        assert {"--time-budget", "--device", "--dtype", "--seed", "--quiet"} <= flags, name
    expected_absent = {
        "resume": {"--device", "--dtype", "--seed", "--quiet"},  # replays the recorded command
        "transform": {"--seed", "--dtype"},  # deterministic, in the map's own precision
        "style-apply": {"--seed", "--bf16", "--iterations"},  # no training
    }.get(name, set())
    assert not flags & expected_absent, (name, flags & expected_absent)


def test_no_flag_is_accepted_and_ignored():
    """--bf16 (autocast of the W2GN loss) only where the command passes the training options to the solver."""
    for name, parser in COMMANDS.items():
        module = inspect.getmodule(parser._defaults["func"]) if "func" in parser._defaults else None
        reads = module is not None and "training_options(args)" in inspect.getsource(module)
        assert ("--bf16" in _flags(parser)) == reads, name


def _expected_defaults() -> dict[str, dict]:
    """What each command trains with by default, read from the one place it lives."""
    from w2gn.applications.color import COLOR_DEFAULTS
    from w2gn.applications.domain import DomainAdaptationConfig
    from w2gn.applications.latent import LatentConfig
    from w2gn.applications.toy import TOY_DEFAULTS
    from w2gn.solvers.presets import LR_BY_DIMENSION, preset_defaults
    from w2gn.testbeds.comparison import compare_gaussian
    from w2gn.testbeds.runner import run_fit

    def fields(cls):
        return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(cls)}

    fit = {k: (None if v == LR_BY_DIMENSION else v) for k, v in preset_defaults("fit").items()}
    sig = {k: v.default for k, v in inspect.signature(compare_gaussian).parameters.items()}
    bench = {k: v.default for k, v in inspect.signature(run_fit).parameters.items()}
    return {
        # w2gn fit has no step count by default: its time budget ends the fit (the preset's count is the API's)
        "fit": {**fit, "iterations": None},
        "gaussian": {**preset_defaults("paper"), "iterations": 3000},
        "toy": {**preset_defaults("paper"), **TOY_DEFAULTS},
        "color-transfer": {**preset_defaults("paper"), **COLOR_DEFAULTS},
        "domain-adapt": fields(DomainAdaptationConfig),
        "latent": fields(LatentConfig),
        "compare gaussian": {k: sig[k] for k in ("iterations", "batch_size", "lr", "hidden_floor", "pretrain_iterations",
                                                 "eval_every", "eval_samples", "time_budget", "pair_seed")},
        "benchmark": {"time_budget": bench["budget_s"], "clock": bench["clock"], "max_iterations": bench["max_iterations"],
                      "curve_samples": bench["curve_samples"], "methods": bench["method"]},
    }


@pytest.mark.parametrize("name", sorted(_expected_defaults()))
def test_cli_defaults_are_the_configs(name):
    """One generic check: every option of a command whose destination is a field of the command's config
    (or preset) defaults to that field's value, so no command restates a default that could drift."""
    expected = _expected_defaults()[name]
    parser = COMMANDS[name]
    compared = 0
    for action in _options(parser):
        if action.dest in expected and action.dest not in ("mnist_train", "limit"):  # 0 on the CLI means None
            assert action.default == expected[action.dest], (name, action.dest, action.default, expected[action.dest])
            compared += 1
    assert compared >= 5 or name == "benchmark", (name, compared)


def test_fit_defaults_follow_the_preset_when_it_changes(monkeypatch):
    """Derivation, not a copy: changing the preset changes the command's parser."""
    from w2gn.solvers import presets

    changed = presets.Preset({**presets.PRESETS["fit"].options, "ema_decay": 0.5, "iterations": 7}, time_budget=42.0)
    monkeypatch.setitem(presets.PRESETS, "fit", changed)
    fit = _subparsers(build_parser())["fit"]
    args = fit.parse_args(["a.npy", "b.npy"])
    assert args.ema_decay == 0.5 and args.iterations is None  # the budget, not the count, ends a CLI fit
    assert "default: 42; with several processes" in " ".join(fit.format_help().split())


def _readme_cli_lines() -> list[str]:
    """The w2gn command lines of the README's shell code blocks (continuations joined, comments cut)."""
    lines: list[str] = []
    lang, joined = None, ""
    for raw in README.read_text().splitlines():
        if raw.startswith("```"):
            lang = raw[3:].strip() if lang is None else None
            continue
        if lang not in ("bash", "sh", ""):
            continue
        line = "" if raw.lstrip().startswith("#") else raw.split(" #")[0].rstrip()
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        line, joined = joined + line, ""
        for part in re.split(r"\s;\s|&&", line):
            words = part.split()
            if words and words[0] in ("w2gn", "torchrun") and "w2gn" in words:
                lines.append(" ".join(words[words.index("w2gn") + 1:]))
    return lines


def test_readme_commands_parse():
    """Every complete w2gn command line in the README's code blocks is accepted by the parser."""
    checked = 0
    for line in _readme_cli_lines():
        if "..." in line or "{" in line or "|" in line or "[" in line or "<" in line:
            continue  # a synopsis with placeholders, not a command
        if any(re.fullmatch(r"[A-Z][A-Z0-9_]*", t) for t in shlex.split(line)):
            continue  # SOURCE, DIR, D: placeholders
        try:
            build_parser().parse_args(shlex.split(line))
        except SystemExit as exc:  # pragma: no cover - the message says which line
            pytest.fail(f"README command does not parse ({exc.code}): w2gn {line}")
        checked += 1
    assert checked >= 15


def test_readme_flags_exist():
    """Every --flag the README names (code and prose) is a visible option of some command."""
    flags = {s for p in COMMANDS.values() for s in _flags(p)} | {"--help", "--version", "--debug", "--no-deps",
                                                                  "--standalone"}
    text = README.read_text()
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", text))
    # options of other programs the README names: mkdocs, torchrun, pip, the example scripts
    python_scripts = {"--strict", "--nproc_per_node", "--quick"}
    unknown = sorted(named - flags - python_scripts)
    assert not unknown, unknown


def test_readme_states_the_runtime_rule():
    """The README's sentence about shared options matches the rule the walk enforces."""
    text = " ".join(README.read_text().split())
    assert "Every subcommand has `--help`, `--device`, `--dtype`, `--seed`" not in text
    assert "Every command that trains has `--time-budget`, `--device`, `--dtype` and `--seed`" in text


def test_old_spellings_still_parse_as_hidden_aliases():
    """Scripts written for the earlier names keep working; --help no longer lists those names."""
    p = build_parser()
    a = p.parse_args(["benchmark", "--budget", "5", "-o", "b"])
    assert (a.time_budget, a.out_dir) == (5.0, "b")
    assert p.parse_args(["benchmark", "--output-dir", "c"]).out_dir == "c"
    assert p.parse_args(["compare", "gaussian", "--clock", "cpu"]).clock == "process"
    assert p.parse_args(["domain-adapt", "-o", "d"]).out_dir == "d"
    assert p.parse_args(["latent", "--output", "e"]).out_dir == "e"
    assert p.parse_args(["style-apply", "m.pt", "i.png", "--output-dir", "f"]).out_dir == "f"
    assert p.parse_args(["style-transfer", "A", "B", "-o", "g"]).out_dir == "g"
    for name in ("benchmark", "domain-adapt", "style-transfer"):
        text = COMMANDS[name].format_help()
        assert "--output-dir" not in text and "--budget" not in text and "-o " not in text, name


def test_readme_fit_paragraph_states_the_preset():
    """The README's description of what 'w2gn fit' trains with matches the preset it reads its defaults from."""
    from w2gn.solvers.presets import get_preset

    fit = get_preset("fit")
    text = " ".join(README.read_text().split())
    # 'w2gn fit' runs to its time budget: the preset's step count is only the schedule's first horizon
    assert build_parser().parse_args(["fit", "p.npy", "q.npy"]).iterations is None
    assert (
        f"for {fit.time_budget / 60:g} minutes (`--time-budget {fit.time_budget:g}`; as many steps as that allows, "
        "unless `--iterations N` caps them)"
    ) in text
    assert fit.options["lr_schedule"] == "cosine" and "cosine learning-rate decay" in text
    assert fit.options["ema_decay"] > 0 and "weight averaging" in text
    assert fit.options["refine_inverse_steps"] == 20 and "the inverse refined by 20 L-BFGS steps" in text
    assert fit.options["precondition"] == "diagonal" and "centred, per-coordinate balanced coordinates" in text
    assert fit.options["lambda_per_dim"] == 0.5 and fit.options["lambda_cap"] is None and "a cycle weight λ = D / 2" in text
    assert "the expectile regulariser at weight 10 from D = 8 up" in text



def test_fit_resolves_the_expectile_weight_by_dimension_unless_given():
    """The by-dimension default reaches the config 'w2gn fit' trains with, and --expectile-weight overrides it."""
    from w2gn.cli.options import accuracy_options, resolve_by_dimension

    fit = COMMANDS["fit"]
    assert "(default: by dimension D, 0.0 at D=4, 10.0 at D=8" in " ".join(fit.format_help().split())
    for argv, dim, want in (([], 4, 0.0), ([], 8, 10.0), (["--expectile-weight", "0"], 32, 0.0),
                            (["--expectile-weight", "2.5"], 2, 2.5)):
        args = fit.parse_args(["p.npy", "q.npy", *argv])
        resolve_by_dimension(args, dim)
        assert accuracy_options(args)["expectile_weight"] == want, (argv, dim)


def test_fit_help_states_the_cycle_weight_rule():
    """'w2gn fit' shows its preset's cycle weight (D / 2); a paper-settings command shows C.4's."""
    assert "(default: 0.5 D)" in " ".join(COMMANDS["fit"].format_help().split())
    assert "(default: min(D, 50))" in " ".join(COMMANDS["gaussian"].format_help().split())

def test_commands_are_described_by_what_they_run():
    """'w2gn NAME --help' opens with the docstring of the function NAME runs (``common.add_command``): one
    text for the reader of the code and the user; without a docstring (python -OO) the one-line help."""
    from w2gn.cli.common import add_command, doc_paragraph

    described = [name for name, parser in COMMANDS.items()
                 if doc_paragraph(parser.get_default("func")) and parser.description.startswith(
                     doc_paragraph(parser.get_default("func")))]
    assert {"fit", "gaussian", "transform", "resume", "export", "style-transfer", "style-apply",
            "domain-adapt", "latent", "benchmark", "compare gaussian"} <= set(described)

    def run(args):
        return 0

    sub = argparse.ArgumentParser().add_subparsers()
    p = add_command(sub, "nothing", "does nothing", run)
    assert p.description == "does nothing" and p.get_default("func") is run


def test_fit_trains_with_every_preset_option_even_those_without_a_flag(tmp_path):
    """What 'w2gn fit' saves as its config is the `fit` preset at the data's D, options without a flag included
    (lambda_per_dim, lambda_cap had fallen back to the paper's values)."""
    import numpy as np

    from w2gn import TransportMap
    from w2gn.cli import main
    from w2gn.solvers.presets import preset

    rng = np.random.default_rng(0)
    for name, arr in (("p", rng.normal(size=(600, 8))), ("q", 2 * rng.normal(size=(600, 8)) + 1)):
        np.save(tmp_path / f"{name}.npy", arr.astype("f4"))
    out = tmp_path / "m.pt"
    assert main(["fit", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "-o", str(out), "--iterations", "3",
                 "--processes", "1", "--quiet", "--no-checkpoints", "--pretrain-iterations", "2"]) == 0
    saved = TransportMap.load(str(out)).info["config"]
    for key, value in preset("fit", dim=8).items():
        if key != "iterations":
            assert saved[key] == value, (key, saved[key], value)

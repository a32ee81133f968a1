"""The bad-input table: every command, malformed values, each with its message and exit code 2.

A case passes when the command exits with code 2, prints nothing on stdout, ends stderr with a
line starting 'Error:' that names the problem, shows no traceback, and leaves no output file.
"""

import re

import pytest
from click.testing import CliRunner

from tradeoff.cli import main

HUGE = str(10**12)
BAD_INPUT = [
    # run: names
    (["run", "--strategy", "fastest"], "Invalid value for '--strategy'"),
    (["run", "--activation", "gelu"], "Invalid value for '--activation'"),
    (["run", "--loss", "hinge"], "Invalid value for '--loss'"),
    (["run", "--dtype", "float16"], "Invalid value for '--dtype'"),
    # run: numbers
    (["run", "--depth", "0"], "Invalid value for '--depth'"),
    (["run", "--depth", "-3"], "Invalid value for '--depth'"),
    (["run", "--depth", "two"], "Invalid value for '--depth'"),
    (["run", "--width", "0"], "Invalid value for '--width'"),
    (["run", "--width", "-1"], "Invalid value for '--width'"),
    (["run", "--width", "1.5"], "Invalid value for '--width'"),
    (["run", "--batch", "0"], "Invalid value for '--batch'"),
    (["run", "--batch", "-5"], "Invalid value for '--batch'"),
    (["run", "--batch", "many"], "Invalid value for '--batch'"),
    (["run", "--repeats", "0"], "Invalid value for '--repeats'"),
    (["run", "--repeats", HUGE], "Invalid value for '--repeats'"),
    (["run", "--pieces", "1", "--activation", "maxout"], "Invalid value for '--pieces'"),
    (["run", "--pieces", "300", "--activation", "maxout"], "Invalid value for '--pieces'"),
    (["run", "--seed", "-1"], "seed"),
    (["run", "--seed", "x"], "Invalid value for '--seed'"),
    # run: huge models are refused before anything is allocated
    (["run", "--width", HUGE], "exceeds the memory available"),
    (["run", "--batch", HUGE], "exceeds the memory available"),
    (["run", "--depth", "100000", "--width", "4096"], "exceeds the memory available"),
    (["run", "--depth", "100000000"], "is not in the range 1<=x<=1000000"),
    # run: widths
    (["run", "--widths", "784,,10"], "not a comma-separated list"),
    (["run", "--widths", "784"], "not a comma-separated list"),
    (["run", "--widths", "784,0,10"], "not a comma-separated list"),
    (["run", "--widths", "784,-2,10"], "not a comma-separated list"),
    (["run", "--widths", "a,b"], "not a comma-separated list"),
    (["run", "--widths", ""], "not a comma-separated list"),
    # str.isdigit says yes to a superscript two, which int() refuses
    (["run", "--widths", "\u00b2,3"], "not a comma-separated list"),
    (["run", "--widths", "4,4", "--depth", "3"], "--widths cannot be combined with --depth"),
    (["run", "--widths", "4,4", "--width", "3"], "--widths cannot be combined with --depth"),
    # run: strategy options
    (["run", "--strategy", "store-all", "--segments", "2"], "'store-all' does not take segments"),
    (["run", "--strategy", "sqrt", "--slots", "2"], "'sqrt' does not take slots"),
    (["run", "--strategy", "sqrt", "--segments", "0"], "Invalid value for '--segments'"),
    (["run", "--strategy", "revolve", "--slots", "0"], "Invalid value for '--slots'"),
    (["run", "--strategy", "revolve", "--slots", "-2"], "Invalid value for '--slots'"),
    (["run", "--strategy", "optimal", "--budget", "nan"], "budget"),
    (["run", "--strategy", "optimal", "--budget", "-1"], "budget"),
    (["run", "--strategy", "optimal", "--budget", "1.5"], "budget"),
    (["run", "--strategy", "optimal", "--budget", "0"], "budget"),
    (["run", "--strategy", "optimal", "--budget", "12XB"], "budget"),
    (["run", "--strategy", "optimal", "--budget", ""], "budget"),
    (["run", "--strategy", "optimal", "--budget", "\u00b2"], "budget"),
    (["run", "--strategy", "optimal", "--budget", "\u0663MiB"], "budget"),
    (["run", "--strategy", "optimal", "--budget", "1KiB"], "smallest feasible"),
    (["run", "--strategy", "sqrt", "--budget", "1MiB"], "'sqrt' does not take budget"),
    # run: output paths
    (
        ["run", "--save-grads", "/nonexistent-dir/g.npz"],
        "directory '/nonexistent-dir' does not exist",
    ),
    (["run", "--save-grads", "/"], "Invalid value for '--save-grads'"),
    (["run", "--save-grads", ""], "--save-grads is empty"),
    # /proc exists and root may "access" it, but no file can be created there
    (["run", "--save-grads", "/proc/g.npz"], "directory '/proc' is not writable"),
    # compare
    (["compare", "--depth", "0"], "Invalid value for '--depth'"),
    (["compare", "--widths", "3,x"], "not a comma-separated list"),
    (["compare", "--budget", "inf"], "budget"),
    (["compare", "--width", HUGE], "exceeds the memory available"),
    (["compare", "--depth", "3", "--width", "8", "--budget", "10"], "smallest feasible"),
    (["compare", "--repeats", HUGE], "Invalid value for '--repeats'"),
    # plan
    (["plan"], "Missing option '--budget'"),
    (["plan", "--budget", "lots"], "budget"),
    (["plan", "--budget", "1KiB"], "smallest feasible"),
    (["plan", "--budget", "1MiB", "--chain", "/nonexistent/chain.json"], "chain.json"),
    (["plan", "--budget", "1MiB", "--chain", "{dir}/corrupt.json"], "corrupt.json"),
    (["plan", "--budget", "1MiB", "--chain", "{dir}/chain.json", "--depth", "3"], "--chain"),
    # sweep
    (["sweep", "--depth", "a,b", "--out", "{dir}/s.jsonl"], "--depth takes whole numbers"),
    (["sweep", "--depth", "0", "--out", "{dir}/s.jsonl"], "grid key 'depth': 0"),
    (
        ["sweep", "--strategy", "fast", "--out", "{dir}/s.jsonl"],
        "grid key 'strategy': unknown 'fast'",
    ),
    (["sweep", "--activation", "gelu", "--out", "{dir}/s.jsonl"], "unknown 'gelu'"),
    (["sweep", "--budget", "-1", "--strategy", "optimal", "--out", "{dir}/s.jsonl"], "budget"),
    (["sweep", "--jobs", "0", "--out", "{dir}/s.jsonl"], "Invalid value for '--jobs'"),
    (["sweep", "--jobs", HUGE, "--out", "{dir}/s.jsonl"], "Invalid value for '--jobs'"),
    (["sweep", "--repeats", HUGE, "--out", "{dir}/s.jsonl"], "Invalid value for '--repeats'"),
    (["sweep", "--depth", "\u00b2", "--out", "{dir}/s.jsonl"], "--depth takes whole numbers"),
    (["sweep", "--out", ""], "--out is empty"),
    (["sweep", "--out", "{dir}/s.jsonl", "--csv", "{dir}/s.jsonl"], "name the same file"),
    (["sweep", "--out", "/nonexistent-dir/s.jsonl"], "directory '/nonexistent-dir' does not exist"),
    (["sweep", "--out", "/proc/s.jsonl"], "directory '/proc' is not writable"),
    (["sweep", "--out", "{dir}/s.jsonl", "--csv", "/proc/s.csv"], "'/proc' is not writable"),
    (
        ["sweep", "--config", "{dir}/missing.toml", "--out", "{dir}/s.jsonl"],
        "cannot read grid file",
    ),
    (
        ["sweep", "--config", "{dir}/unknown.toml", "--out", "{dir}/s.jsonl"],
        "unknown grid keys: depths",
    ),
    (["sweep", "--config", "{dir}/broken.toml", "--out", "{dir}/s.jsonl"], "is not valid TOML"),
    (["sweep", "--config", "{dir}/broken.json", "--out", "{dir}/s.jsonl"], "is not valid JSON"),
    (["sweep", "--out", "{dir}/corrupt.jsonl", "--depth", "1"], "corrupt.jsonl:1: not a JSON row"),
    # report
    (["report", "--data", "/nonexistent-dir", "--out", "{dir}/out"], "missing data file"),
    (["report", "--data", "{dir}", "--out", "/nonexistent-dir/out"], "does not exist"),
    (["report", "--data", "{dir}", "--out", "/proc/out"], "directory '/proc' is not writable"),
    (["report", "--data", "{dir}", "--out", ""], "--out is empty"),
    # unknown commands and options
    (["fly"], "No such command 'fly'"),
    (["run", "--colour"], "No such option '--colour'"),
]


@pytest.fixture
def files(tmp_path):
    """Files the cases refer to as {dir}/...: broken configs, a corrupt results file."""
    (tmp_path / "unknown.toml").write_text("depths = [1, 2]\n")
    (tmp_path / "broken.toml").write_text("depth = [1, 2\n")
    (tmp_path / "broken.json").write_text('{"depth": [1, 2]')
    (tmp_path / "corrupt.jsonl").write_text('{"strategy": "sqrt", "flops"')
    (tmp_path / "corrupt.json").write_text('{"blocks": [')
    (tmp_path / "chain.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_an_error_line(files, args, message):
    before = sorted(files.rglob("*"))
    args = [a.replace("{dir}", str(files)) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:"), result.stderr
    assert re.search(re.escape(message), result.stderr, flags=re.I), result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(files.rglob("*")) == before, "a file was written"


def test_the_table_is_large_enough():
    assert len(BAD_INPUT) >= 40

"""The command line: a thin click group over the library. Docstrings are the help text."""

from __future__ import annotations

import json

import click
import numpy as np

from . import __version__
from .model import xor_network
from .runner import infer

XOR_INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradeoff")
def main() -> None:
    """Measure and choose the memory-versus-compute trade-off of backpropagation.

    \b
    Example:
      tradeoff run --strategy sqrt
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def xor(as_json: bool) -> None:
    """The seed's hand-built XOR network on its four inputs.

    W = [[1, 1], [1, 1]], c = [0, -1], w = [1, -2], b = 0, ReLU.

    \b
    Example:
      tradeoff xor --json
    """
    outputs = infer(xor_network(), np.array(XOR_INPUTS, dtype=np.float64))[:, 0]
    values = [int(v) if float(v).is_integer() else float(v) for v in outputs]
    if as_json:
        click.echo(json.dumps({"inputs": XOR_INPUTS, "outputs": values}))
        return
    click.echo("x1 x2  XOR network")
    for (a, b), v in zip(XOR_INPUTS, values):
        click.echo(f"{a:>2} {b:>2}  {v}")


@main.command()
@click.option("--strategy", default="sqrt", show_default=True, help="A name from STRATEGIES.")
@click.option("--depth", default=16, show_default=True, type=click.IntRange(min=1), help="Blocks.")
@click.option("--width", default=512, show_default=True, type=click.IntRange(min=1))
@click.option("--batch", default=128, show_default=True, type=click.IntRange(min=1))
def run(strategy: str, depth: int, width: int, batch: int) -> None:
    """Run one strategy on an MLP of DEPTH blocks of WIDTH units and report its costs.

    \b
    Example:
      tradeoff run --strategy sqrt --depth 32 --width 256
    """
    from . import runner
    from .model import MLP, make_batch

    model = MLP([width] * (depth + 1))
    x, y = make_batch(model, batch)
    try:
        base = runner.run(model, x, y, "store-all")
        r = runner.run(model, x, y, strategy)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    identical = all(a.tobytes() == b.tobytes() for a, b in zip(r.grads, base.grads))
    click.echo(f"model      {model.describe()}, batch {batch}")
    click.echo(f"strategy   {r.strategy}")
    click.echo(
        f"FLOPs      {r.flops['total']:,} ({r.flops['total'] / base.flops['total']:.3f}x store-all)"
    )
    click.echo(
        f"peak       {r.peak_bytes:,} bytes ({r.peak_bytes / base.peak_bytes:.3f}x store-all)"
    )
    click.echo(f"gradients  {'bit-identical' if identical else 'DIFFER'} to store-all")

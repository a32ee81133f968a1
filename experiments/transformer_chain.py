"""A chain file for a transformer-like stack, to plan a model far larger than this machine runs.

Run: python experiments/transformer_chain.py --output gpt.json
then: tradeoff plan --chain gpt.json --budget 64GiB

Each layer is one block. Its activation memory follows Korthikanti et al. 2022 ("Reducing
Activation Recomputation in Large Transformer Models", no tensor or sequence parallelism,
16-bit activations): s b h (34 + 5 a s / h) bytes per layer, for sequence length s, micro-batch
b, hidden size h and a attention heads. That figure includes the layer's input (2 s b h bytes),
which the chain counts as x[i], so the tape adds the rest. A layer's forward costs
24 b s h^2 + 4 b s^2 h FLOPs (the four h x h projections, the two h x 4h MLP matmuls, and the
attention scores and their product with the values), its backward twice that. A last block
stands for the output head (h x vocab logits), and the loss for the softmax cross-entropy on
the logits. Embeddings (x[0]) cost no FLOPs here.
"""

import argparse
import json
import sys
from pathlib import Path

from tradeoff import BlockCost, Chain

# --- config: a GPT-3 175B-like stack (Brown et al. 2020) at one sequence per micro-batch ------
LAYERS = 96
SEQUENCE = 2048  # s
BATCH = 1  # b: sequences per micro-batch
HIDDEN = 12288  # h
HEADS = 96  # a
VOCAB = 51200
BYTES = 2  # 16-bit activations
OUT = Path("transformer_chain.json")
# ----------------------------------------------------------------------------------------------


def layer_cost(s: int, b: int, h: int, a: int, itemsize: int) -> BlockCost:
    """One transformer layer: x[i] and x[i+1] are s b h activations."""
    x = s * b * h * itemsize
    # Korthikanti et al.: s b h (34 + 5 a s / h) bytes at 16 bits = 17 s b h + 2.5 a s^2 b
    # elements; this scales it to the item size and takes out the input, held as x[i].
    elements = 17 * s * b * h + (5 * a * s * s * b) // 2
    forward = 24 * b * s * h * h + 4 * b * s * s * h
    return BlockCost(
        forward_matmul_flops=forward,
        forward_elementwise_flops=0,
        backward_matmul_flops=2 * forward,
        backward_elementwise_flops=0,
        input_bytes=x,
        output_bytes=x,
        tape_bytes=elements * itemsize - x,
    )


def transformer_chain(
    layers: int = LAYERS,
    sequence: int = SEQUENCE,
    batch: int = BATCH,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    vocab: int = VOCAB,
    itemsize: int = BYTES,
) -> Chain:
    """The chain: ``layers`` transformer layers, then the output head; the loss on its logits."""
    s, b, h = sequence, batch, hidden
    logits = s * b * vocab * itemsize
    head = BlockCost(
        forward_matmul_flops=2 * b * s * h * vocab,
        forward_elementwise_flops=0,
        backward_matmul_flops=4 * b * s * h * vocab,
        backward_elementwise_flops=0,
        input_bytes=s * b * h * itemsize,
        output_bytes=logits,
    )
    blocks = [layer_cost(s, b, h, heads, itemsize)] * layers + [head]
    # softmax cross-entropy: about five passes over the logits (max, exp, sum, log, gradient)
    return Chain(tuple(blocks), loss_flops=5 * s * b * vocab, loss_bytes=logits)


def main(argv=None) -> None:
    """Write the chain JSON file for the configured (or given) transformer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--sequence", type=int, default=SEQUENCE)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    parser.add_argument("--heads", type=int, default=HEADS)
    parser.add_argument("--vocab", type=int, default=VOCAB)
    parser.add_argument("--bytes", type=int, default=BYTES, help="bytes per activation element")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for name in ("layers", "sequence", "batch", "hidden", "heads", "vocab", "bytes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    config = {k: getattr(args, k) for k in ("layers", "sequence", "batch", "hidden", "heads")}
    config.update(vocab=args.vocab, bytes=args.bytes)
    chain = transformer_chain(*config.values())
    data = chain.to_dict()
    data["description"] = (
        f"transformer-like stack: {args.layers} layers, s={args.sequence}, b={args.batch}, "
        f"h={args.hidden}, a={args.heads}, vocab={args.vocab}, {8 * args.bytes}-bit activations "
        "(Korthikanti et al. 2022 activation memory), then the output head"
    )
    data["meta"] = {"generator": "experiments/transformer_chain.py", "config": config}
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    layer = chain.blocks[0]
    per_layer = layer.input_bytes + layer.tape_bytes
    print(
        f"{args.output}: {chain.n} blocks, {per_layer / 2**30:.2f} GiB of activations per layer",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

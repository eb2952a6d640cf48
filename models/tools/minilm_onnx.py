#!/usr/bin/env python3
"""Build an ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2: BERT + mean pooling
+ L2 normalisation, as sentence-transformers computes it) directly from the model's
safetensors weights, with onnx.helper only (no torch). Run by .ci/models.sh at set-up:
the graph is what ONNX Runtime runs on the CPU instead of Candle (same weights, same
embeddings: cosine >= 0.9999999 to sentence-transformers), and its dynamic int8
quantisation is the opt-in `all-minilm-l6-v2-int8` model. Deterministic: the same inputs
and the pinned onnx / numpy / onnxruntime versions give byte-identical files.

Usage: minilm_onnx.py MODEL_DIR OUT.onnx [--fuse OUT_FUSED.onnx] [--int8 OUT_INT8.onnx]

The plain graph uses standard opset-17 ops laid out the way a torch export of
BertModel looks, so that onnxruntime.transformers.optimizer (model_type='bert')
recognises it and fuses EmbedLayerNormalization / Attention / SkipLayerNormalization /
BiasGelu. --fuse writes that fused graph; --int8 writes a dynamic int8 quantisation of
the fused graph (or of the plain one without --fuse).
Inputs: input_ids, attention_mask, token_type_ids  (int64, [batch, seq]).
Output: sentence_embedding (float32, [batch, 384], L2-normalised mean of token states).
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def load_file(path):
    """The tensors of a safetensors file (F32/F16/I64), as numpy arrays."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "BF16": None}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        kind = kinds.get(t["dtype"])
        if kind is None:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}, not supported")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=kind).reshape(t["shape"])
    return out

OPSET = 17


class G:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C", copy=True), name))
        return name

    def op(self, op_type, inputs, name, n_out=1, **attrs):
        outs = [name] if n_out == 1 else [f"{name}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs


def build(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    H = cfg["hidden_size"]
    NH = cfg["num_attention_heads"]
    HD = H // NH
    L = cfg["num_hidden_layers"]
    eps = float(cfg["layer_norm_eps"])
    assert cfg["hidden_act"] == "gelu" and cfg["position_embedding_type"] == "absolute"
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    f32 = lambda k: w[k].astype(np.float32)
    g = G()

    # shared constants
    one = g.const("c_one", np.array(1.0, np.float32))
    half = g.const("c_half", np.array(0.5, np.float32))
    sqrt2 = g.const("c_sqrt2", np.array(np.sqrt(2.0), np.float32))
    scale = g.const("c_sqrt_hd", np.array(np.sqrt(HD), np.float32))
    neg = g.const("c_mask_neg", np.array(-10000.0, np.float32))
    shp_heads = g.const("c_shape_heads", np.array([0, 0, NH, HD], np.int64))
    shp_merge = g.const("c_shape_merge", np.array([0, 0, H], np.int64))
    ax0 = g.const("c_axes0", np.array([0], np.int64))
    ax1 = g.const("c_axes1", np.array([1], np.int64))
    ax2 = g.const("c_axes2", np.array([2], np.int64))
    i0 = g.const("c_i0", np.array([0], np.int64))
    i1s = g.const("c_i1_scalar", np.array(1, np.int64))
    i1 = g.const("c_i1", np.array([1], np.int64))

    # --- embeddings: word + token_type + position (position ids = Slice of a [1,512] const) ---
    we = g.const("embeddings.word_embeddings.weight", f32("embeddings.word_embeddings.weight"))
    te = g.const("embeddings.token_type_embeddings.weight", f32("embeddings.token_type_embeddings.weight"))
    pe = g.const("embeddings.position_embeddings.weight", f32("embeddings.position_embeddings.weight"))
    pos_ids = g.const("embeddings.position_ids",
                      np.arange(cfg["max_position_embeddings"], dtype=np.int64)[None, :])
    x_w = g.op("Gather", [we, "input_ids"], "emb_word")
    x_t = g.op("Gather", [te, "token_type_ids"], "emb_type")
    shape = g.op("Shape", ["input_ids"], "emb_shape")
    seq = g.op("Gather", [shape, i1s], "emb_seq_len", axis=0)
    seq1 = g.op("Unsqueeze", [seq, ax0], "emb_seq_len_1d")
    pid = g.op("Slice", [pos_ids, i0, seq1, i1, i1], "emb_pos_ids")
    x_p = g.op("Gather", [pe, pid], "emb_pos")
    x = g.op("Add", [x_w, x_t], "emb_add_wt")
    x = g.op("Add", [x, x_p], "emb_add_pos")
    x = g.op("LayerNormalization",
             [x, g.const("embeddings.LayerNorm.weight", f32("embeddings.LayerNorm.weight")),
              g.const("embeddings.LayerNorm.bias", f32("embeddings.LayerNorm.bias"))],
             "emb_ln", axis=-1, epsilon=eps)

    # --- extended attention mask: (1 - mask[:, None, None, :]) * -10000 ---
    m = g.op("Unsqueeze", ["attention_mask", ax1], "mask_unsq1")
    m = g.op("Unsqueeze", [m, ax2], "mask_unsq2")
    m = g.op("Cast", [m], "mask_cast", to=TensorProto.FLOAT)
    m = g.op("Sub", [one, m], "mask_sub")
    ext_mask = g.op("Mul", [m, neg], "mask_mul")

    def linear(inp, prefix, name):
        wt = g.const(prefix + ".weight", np.ascontiguousarray(f32(prefix + ".weight").T))
        b = g.const(prefix + ".bias", f32(prefix + ".bias"))
        y = g.op("MatMul", [inp, wt], name + "_matmul")
        return g.op("Add", [y, b], name + "_bias")

    for l in range(L):
        p = f"encoder.layer.{l}."
        n = f"l{l}_"
        heads = {}
        for qkv in ("query", "key", "value"):
            y = linear(x, p + "attention.self." + qkv, n + qkv)
            y = g.op("Reshape", [y, shp_heads], n + qkv + "_reshape")
            perm = [0, 2, 3, 1] if qkv == "key" else [0, 2, 1, 3]
            heads[qkv] = g.op("Transpose", [y], n + qkv + "_transpose", perm=perm)
        s = g.op("MatMul", [heads["query"], heads["key"]], n + "qk")
        s = g.op("Div", [s, scale], n + "qk_scale")
        s = g.op("Add", [s, ext_mask], n + "qk_mask")
        s = g.op("Softmax", [s], n + "softmax", axis=-1)
        c = g.op("MatMul", [s, heads["value"]], n + "ctx")
        c = g.op("Transpose", [c], n + "ctx_transpose", perm=[0, 2, 1, 3])
        c = g.op("Reshape", [c, shp_merge], n + "ctx_reshape")
        a = linear(c, p + "attention.output.dense", n + "attn_out")
        a = g.op("Add", [a, x], n + "attn_residual")
        a = g.op("LayerNormalization",
                 [a, g.const(p + "attention.output.LayerNorm.weight", f32(p + "attention.output.LayerNorm.weight")),
                  g.const(p + "attention.output.LayerNorm.bias", f32(p + "attention.output.LayerNorm.bias"))],
                 n + "attn_ln", axis=-1, epsilon=eps)
        h = linear(a, p + "intermediate.dense", n + "ffn_in")
        # exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
        e = g.op("Div", [h, sqrt2], n + "gelu_div")
        e = g.op("Erf", [e], n + "gelu_erf")
        e = g.op("Add", [e, one], n + "gelu_add")
        e = g.op("Mul", [h, e], n + "gelu_mul")
        h = g.op("Mul", [e, half], n + "gelu_half")
        o = linear(h, p + "output.dense", n + "ffn_out")
        o = g.op("Add", [o, a], n + "ffn_residual")
        x = g.op("LayerNormalization",
                 [o, g.const(p + "output.LayerNorm.weight", f32(p + "output.LayerNorm.weight")),
                  g.const(p + "output.LayerNorm.bias", f32(p + "output.LayerNorm.bias"))],
                 n + "ffn_ln", axis=-1, epsilon=eps)

    # --- mean pooling over attended tokens, then L2 normalise (sentence-transformers) ---
    pm = g.op("Cast", ["attention_mask"], "pool_mask_cast", to=TensorProto.FLOAT)
    pm = g.op("Unsqueeze", [pm, ax2], "pool_mask_unsq")
    s = g.op("Mul", [x, pm], "pool_masked")
    s = g.op("ReduceSum", [s, ax1], "pool_sum", keepdims=0)
    cnt = g.op("ReduceSum", [pm, ax1], "pool_count", keepdims=0)
    cnt = g.op("Max", [cnt, g.const("c_1e-9", np.array(1e-9, np.float32))], "pool_count_clamp")
    mean = g.op("Div", [s, cnt], "pool_mean")
    nrm = g.op("ReduceL2", [mean], "norm_l2", axes=[1], keepdims=1)
    nrm = g.op("Max", [nrm, g.const("c_1e-12", np.array(1e-12, np.float32))], "norm_clamp")
    g.nodes.append(helper.make_node("Div", [mean, nrm], ["sentence_embedding"], name="norm_div"))

    ins = [helper.make_tensor_value_info(k, TensorProto.INT64, ["batch", "seq"])
           for k in ("input_ids", "attention_mask", "token_type_ids")]
    outs = [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", H])]
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", ins, outs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="agentdb-minilm_onnx", producer_version="0.1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, cfg


def main():
    args = sys.argv[1:]
    model_dir, out = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2]))
    model, cfg = build(model_dir)
    onnx.save(model, out)
    print("wrote", out)
    src = out
    if "--fuse" in opts:
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import FusionOptions
        fo = FusionOptions("bert")
        fo.use_raw_attention_mask(False)  # Attention gets 1-D mask_index (right padding)
        opt = optimizer.optimize_model(out, model_type="bert", num_heads=cfg["num_attention_heads"],
                                       hidden_size=cfg["hidden_size"], optimization_options=fo,
                                       opt_level=0, use_gpu=False, only_onnxruntime=False)
        print("fused op counts:", json.dumps(opt.get_fused_operator_statistics()))
        opt.save_model_to_file(opts["--fuse"])
        print("wrote", opts["--fuse"])
        src = opts["--fuse"]
    if "--int8" in opts:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        # contrib ops defeat ONNX shape inference: tell the quantiser that unknown tensors are float
        quantize_dynamic(src, opts["--int8"], weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
        print("wrote", opts["--int8"], "from", src)


if __name__ == "__main__":
    main()

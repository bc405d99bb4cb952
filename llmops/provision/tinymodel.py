#!/usr/bin/env python3
"""Make the tiny model pair: a Hugging Face folder and a GGUF file holding the same weights.

Run on the host inside a small venv (numpy, gguf, tokenizers, safetensors; no torch):

    python tinymodel.py --vocab ggml-vocab-llama-spm.gguf --out DIR [--seed 0]

writes DIR/hf/ (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, ...)
and DIR/tiny.gguf. The vocabulary is llama.cpp's real 32000-token SentencePiece vocabulary
(from its source tree), turned into a `tokenizers` BPE model the way Llama tokenizers are
usually converted: merges ranked by the score of the merged piece, byte fallback on.
The weights are random (seeded), so the output text is noise, but prefill, decode,
batching and queueing are real work for both servers. Shapes follow what vLLM's CPU
attention accepts (head_dim 64).

Weights are float32 in both files. GGUF stores Q and K rows permuted relative to Hugging Face
(llama.cpp applies rotary embeddings to interleaved pairs, HF to two halves); `permute_qk`
does that so both servers compute the same function.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

SHAPE = {
    "vocab_size": 32000,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
}
FORMAT_VERSION = 1
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def permute_qk(w, n_head: int):
    """HF (rotate-half) row order -> GGUF (interleaved pairs) row order for Q/K projections."""
    rows, cols = w.shape
    head_dim = rows // n_head
    return w.reshape(n_head, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def make_weights(seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    s = SHAPE
    h, inter, v = s["hidden_size"], s["intermediate_size"], s["vocab_size"]
    head_dim = h // s["num_attention_heads"]
    kv = s["num_key_value_heads"] * head_dim

    def normal(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = {"model.embed_tokens.weight": normal(v, h), "model.norm.weight": np.ones(h, np.float32),
         "lm_head.weight": normal(v, h)}
    for i in range(s["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = np.ones(h, np.float32)
        w[p + "post_attention_layernorm.weight"] = np.ones(h, np.float32)
        w[p + "self_attn.q_proj.weight"] = normal(h, h)
        w[p + "self_attn.k_proj.weight"] = normal(kv, h)
        w[p + "self_attn.v_proj.weight"] = normal(kv, h)
        w[p + "self_attn.o_proj.weight"] = normal(h, h)
        w[p + "mlp.gate_proj.weight"] = normal(inter, h)
        w[p + "mlp.up_proj.weight"] = normal(inter, h)
        w[p + "mlp.down_proj.weight"] = normal(h, inter)
    return w


GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf_name: str) -> str:
    if hf_name in GGUF_NAMES:
        return GGUF_NAMES[hf_name]
    _, _, index, rest = hf_name.split(".", 3)
    return f"blk.{index}.{LAYER_NAMES[rest]}"


def read_vocab(path: str):
    import gguf

    reader = gguf.GGUFReader(path)

    def value(key, default=None):
        field = reader.fields.get(key)
        return field.contents() if field is not None else default

    return {
        "tokens": list(value("tokenizer.ggml.tokens")),
        "scores": [float(x) for x in value("tokenizer.ggml.scores")],
        "types": [int(x) for x in value("tokenizer.ggml.token_type")],
        "bos": int(value("tokenizer.ggml.bos_token_id", 1)),
        "eos": int(value("tokenizer.ggml.eos_token_id", 2)),
        "unk": int(value("tokenizer.ggml.unknown_token_id", 0)),
    }


NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6


def spm_merges(tokens, scores, types):
    """BPE merges that reproduce SentencePiece-BPE: a pair merges earlier the higher its result scores."""
    vocab = {t: i for i, t in enumerate(tokens)}
    normal = {t for t, ty in zip(tokens, types, strict=False) if ty == NORMAL}
    candidates = []
    for merged in normal:
        for cut in range(1, len(merged)):
            left, right = merged[:cut], merged[cut:]
            if left in normal and right in normal:
                candidates.append((-scores[vocab[merged]], vocab[left], vocab[right], left, right))
    candidates.sort()
    return [(left, right) for _, _, _, left, right in candidates]


def write_tokenizer(vocab_info, out_dir: str) -> None:
    from tokenizers import Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    tokens, scores, types = vocab_info["tokens"], vocab_info["scores"], vocab_info["types"]
    bos, eos, unk = tokens[vocab_info["bos"]], tokens[vocab_info["eos"]], tokens[vocab_info["unk"]]
    model = BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=spm_merges(tokens, scores, types),
                unk_token=unk, fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, vocab_info["bos"])])
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (unk, bos, eos)])
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos, "eos_token": eos, "unk_token": unk, "pad_token": None,
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": SHAPE["max_position_embeddings"], "chat_template": CHAT_TEMPLATE,
    }
    _write_json(os.path.join(out_dir, "tokenizer_config.json"), config)
    _write_json(os.path.join(out_dir, "special_tokens_map.json"), {"bos_token": bos, "eos_token": eos, "unk_token": unk})


def write_hf(weights, vocab_info, out_dir: str) -> None:
    from safetensors.numpy import save_file

    os.makedirs(out_dir, exist_ok=True)
    config = dict(SHAPE, architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
                  tie_word_embeddings=False, torch_dtype="float32", bos_token_id=vocab_info["bos"],
                  eos_token_id=vocab_info["eos"], head_dim=SHAPE["hidden_size"] // SHAPE["num_attention_heads"],
                  attention_bias=False, mlp_bias=False, initializer_range=0.02, use_cache=True)
    _write_json(os.path.join(out_dir, "config.json"), config)
    _write_json(os.path.join(out_dir, "generation_config.json"),
                {"bos_token_id": vocab_info["bos"], "eos_token_id": vocab_info["eos"]})
    save_file(weights, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(vocab_info, out_dir)


def write_gguf(weights, vocab_info, path: str) -> None:
    import gguf
    import numpy as np

    s = SHAPE
    n_head, n_kv = s["num_attention_heads"], s["num_key_value_heads"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("llmops-tiny")
    writer.add_context_length(s["max_position_embeddings"])
    writer.add_embedding_length(s["hidden_size"])
    writer.add_block_count(s["num_hidden_layers"])
    writer.add_feed_forward_length(s["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(s["hidden_size"] // n_head)
    writer.add_rope_freq_base(s["rope_theta"])
    writer.add_layer_norm_rms_eps(s["rms_norm_eps"])
    writer.add_vocab_size(s["vocab_size"])
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab_info["tokens"])
    writer.add_token_scores(vocab_info["scores"])
    writer.add_token_types(vocab_info["types"])
    writer.add_bos_token_id(vocab_info["bos"])
    writer.add_eos_token_id(vocab_info["eos"])
    writer.add_unk_token_id(vocab_info["unk"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in weights.items():
        data = tensor
        if name.endswith("self_attn.q_proj.weight"):
            data = permute_qk(tensor, n_head)
        elif name.endswith("self_attn.k_proj.weight"):
            data = permute_qk(tensor, n_kv)
        writer.add_tensor(gguf_name(name), np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", required=True, help="llama.cpp's models/ggml-vocab-llama-spm.gguf")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = os.path.abspath(os.path.expanduser(args.out))
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    vocab_info = read_vocab(args.vocab)
    weights = make_weights(args.seed)
    write_hf(weights, vocab_info, os.path.join(tmp, "hf"))
    write_gguf(weights, vocab_info, os.path.join(tmp, "tiny.gguf"))
    _write_json(os.path.join(tmp, "llmops-model.json"),
                {"format_version": FORMAT_VERSION, "seed": args.seed, "shape": SHAPE, "vocab": os.path.basename(args.vocab)})
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(json.dumps({"hf": os.path.join(out, "hf"), "gguf": os.path.join(out, "tiny.gguf")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

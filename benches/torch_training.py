#!/usr/bin/env python3
"""PyTorch/transformers CPU baseline for benches/training.rs (same shapes, same step).

One optimizer step is: forward of LlamaForCausalLM (f32, random init, transformers' default
attention), completion-only loss, backward, clip_grad_norm_(1.0), AdamW (lr 1e-5, weight decay
0.01). SFT: token-mean negative log-likelihood of the completion tokens (`labels` with -100 on
the prompt, transformers' own loss). DPO: the 8 rows (4 chosen, then 4 rejected) in one forward
pass, summed completion log-probs (gather - logsumexp, TRL's `selective_log_softmax`), sigmoid
DPO loss with beta 0.1 against precomputed reference sums.

Rows: 64 prompt + 192 completion tokens; 8 rows (2,048 tokens) per step. Prints the median
tokens/s over `--steps` steps after one warm-up step. Two threads, as the Rust bench gets here.

    python3 benches/torch_training.py [10m] [100m] [--steps 4]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

PROMPT, COMPLETION, ROWS = 64, 192, 8
CONFIGS = {
    "10m": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=4,
                num_attention_heads=6, vocab_size=8192),
    "100m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                 num_attention_heads=12, vocab_size=32_000),
}


def completion_logps(logits, ids, mask):
    logits = logits[:, :-1].float()
    labels, mask = ids[:, 1:], mask[:, 1:]
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return ((picked - torch.logsumexp(logits, dim=-1)) * mask).sum(-1)


def sft_loss(model, ids, mask):
    labels = ids.masked_fill(~mask, -100)
    return model(input_ids=ids, labels=labels).loss


def dpo_loss(model, ids, mask, ref):
    logps = completion_logps(model(input_ids=ids).logits, ids, mask)
    chosen, rejected = logps.chunk(2)
    ref_chosen, ref_rejected = ref.chunk(2)
    h = (chosen - ref_chosen) - (rejected - ref_rejected)
    return -F.logsigmoid(0.1 * h).mean()


def measure(name, objective, steps):
    torch.manual_seed(0)
    config = LlamaConfig(**CONFIGS[name], max_position_embeddings=1024,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config).float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    length = PROMPT + COMPLETION
    ids = torch.randint(1, config.vocab_size, (ROWS, length))
    mask = torch.zeros(ROWS, length, dtype=torch.bool)
    mask[:, PROMPT:] = True
    ref = torch.randn(ROWS) - 1500.0
    rates = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = sft_loss(model, ids, mask) if objective == "sft" else dpo_loss(model, ids, mask, ref)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        elapsed = time.perf_counter() - start
        if step > 0:
            rates.append(ROWS * length / elapsed)
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__} transformers {transformers.__version__} {name} "
          f"({params / 1e6:.1f}M) {objective}: median {statistics.median(rates):.0f} tokens/s "
          f"over {steps} steps of {ROWS * length} tokens")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="*", default=["10m", "100m"])
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name in args.configs:
        for objective in ("sft", "dpo"):
            measure(name, objective, args.steps)


if __name__ == "__main__":
    main()

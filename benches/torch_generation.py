"""transformers' prefill and decode throughput for the shapes of benches/generation.rs.

    python benches/torch_generation.py [--threads 2]

Same configs (tiny, 100m), batch 1 and 8, prompt 128 tokens, 32 decoded tokens, f32 on CPU.
Decode time is `generate(max_new_tokens=32, min_new_tokens=32)` minus one prefill, so it counts
what transformers' generate loop costs per new token.
"""

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

PROMPT, DECODE = 128, 32
SHAPES = {"tiny": (64, 96, 2, 4, 128), "100m": (768, 2048, 12, 12, 32000)}


def best_of(f, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times), sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, (d, i, layers, heads, vocab) in SHAPES.items():
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=d, intermediate_size=i, num_hidden_layers=layers,
            num_attention_heads=heads, max_position_embeddings=1024, tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config).eval()
        for b in (1, 8):
            ids = (torch.arange(b * PROMPT) * 7919 % vocab).reshape(b, PROMPT)
            with torch.inference_mode():
                model(ids)  # warm-up
                _, prefill = best_of(lambda: model(ids), args.repeats)
                _, full = best_of(
                    lambda: model.generate(
                        ids, max_new_tokens=DECODE, min_new_tokens=DECODE, do_sample=False,
                        pad_token_id=0,
                    ),
                    args.repeats,
                )
            decode = full - prefill
            print(
                f"{name} b={b}: prefill {b * PROMPT / prefill:.0f} tok/s ({prefill * 1e3:.1f} ms), "
                f"decode {b * DECODE / decode:.1f} tok/s ({decode / DECODE * 1e3:.2f} ms/step)"
            )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch eager CPU baseline for crates/w2s-losses/benches/logprobs.rs (same computation, same shapes).

Forward + backward of: logits = hidden @ W.T, token log-probs (gather − logsumexp, TRL's
`selective_log_softmax` form), summed per sequence, DPO sigmoid loss (beta 0.1) of 4 pairs against
precomputed reference sums. b = 8, d = 512; (s = 512, v = 32,000) and (s = 128, v = 128,256).
Prints the median wall time of `--runs` steps after one warm-up, and the process's peak RSS
(which includes ~650 MB for `import torch`). Two threads, as the Rust bench gets on this machine.

    python3 crates/w2s-losses/benches/torch_logprobs.py [--runs 5]
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

B, D = 8, 512


def step(hidden, weight, labels, ref):
    hidden = hidden.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    logits = hidden @ weight.T
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    logps = (picked - torch.logsumexp(logits, dim=-1)).sum(-1)
    chosen, rejected = logps.chunk(2)
    ref_chosen, ref_rejected = ref.chunk(2)
    h = (chosen - ref_chosen) - (rejected - ref_rejected)
    loss = -F.logsigmoid(0.1 * h).mean()
    loss.backward()
    return loss.item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for s, v in [(512, 32_000), (128, 128_256)]:
        hidden = torch.randn(B, s, D)
        weight = torch.randn(v, D) * 0.05
        labels = torch.randint(0, v, (B, s))
        ref = torch.randn(B) * 10 - 2000
        step(hidden, weight, labels, ref)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            step(hidden, weight, labels, ref)
            times.append(time.perf_counter() - start)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"torch {torch.__version__} s={s} v={v}: median {statistics.median(times) * 1e3:.0f} ms "
              f"(min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}); peak RSS so far {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The GPU check (examples/gpu_check/main.rs) in one go: checks the CUDA installation, builds the
# example with the cuda backend, runs it under a time limit and prints its table:
#   - parity with flex: f32 logits, bf16-base logits, DPO loss and gradients (PASS/FAIL);
#   - decode tokens/s of a Llama-3.2-1B-shaped model, f32 and bf16 base, batch 1, 8, 64;
#   - SFT and DPO step tokens/s and MFU, LoRA on a bf16 base and full f32 fine-tuning.
#
# Needs: the Rust toolchain with the crates of Cargo.lock (no network if they are fetched);
# an NVIDIA driver (nvidia-smi, libcuda); the CUDA toolkit's headers and NVRTC, at $CUDA_PATH or
# /usr/local/cuda or /opt/cuda: burn compiles its kernels at run time with NVRTC, which reads
# $CUDA_PATH/include, so a driver-only machine is not enough. CUDARC_CUDA_VERSION (e.g. 12080),
# the CUDA version of the bindings chosen at build time, is taken from nvcc or cuda.h when unset.
#
# Takes: the release build (the first compiles burn with its CUDA backend: minutes; later runs
# reuse it), then the run, cut off after GPU_CHECK_TIMEOUT seconds (default 240); the rows
# measured by then stay in the table. The whole was sized to fit 8 minutes on one H100; it has
# not been timed on a GPU yet. CUBECL_AUTOTUNE_LEVEL=minimal shortens kernel autotuning.
#
# Output: OUT_DIR (default target/gpu-check, with --cpu target/gpu-check/cpu): table.md (the
# table with date, device and commit, ready for docs/performance.md), build.log and run.log.
#
# Usage: scripts/gpu-check.sh          on a machine with an NVIDIA GPU
#        scripts/gpu-check.sh --cpu    every check on flex with tiny shapes (default build, no
#                                      GPU; under a minute once built)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() {
    echo "gpu-check: $*" >&2
    exit 1
}

mode=gpu
case "${1:-}" in
"") ;;
--cpu) mode=cpu ;;
-h | --help)
    usage
    exit 0
    ;;
*)
    usage >&2
    exit 2
    ;;
esac

out="${OUT_DIR:-target/gpu-check}"
if [[ $mode == cpu && -z ${OUT_DIR:-} ]]; then
    out=target/gpu-check/cpu
fi
limit="${GPU_CHECK_TIMEOUT:-240}"
mkdir -p "$out"

# The CUDA versions cudarc 0.19.10 has bindings for (its build.rs), as CUDARC_CUDA_VERSION
# spells them: major, 0, minor, 0.
supported=(13040 13030 13020 13010 13000 12090 12080 12060 12050 12040 12030 12020 12010 12000
    11080 11070 11060 11050 11040)

# The toolkit's version from nvcc, else from cuda.h's CUDA_VERSION (major * 1000 + minor * 10),
# mapped to the newest bindings not newer than it.
cuda_version() {
    local nvcc major minor version
    nvcc=$(command -v nvcc || echo "$CUDA_PATH/bin/nvcc")
    if [[ -x $nvcc ]]; then
        read -r major minor < <("$nvcc" --version |
            sed -n 's/.*release \([0-9][0-9]*\)\.\([0-9][0-9]*\),.*/\1 \2/p') || true
    fi
    if [[ -z ${major:-} ]]; then
        version=$(sed -n 's/^#define CUDA_VERSION \([0-9][0-9]*\).*/\1/p' "$CUDA_PATH/include/cuda.h")
        [[ -n $version ]] || die "no nvcc and no CUDA_VERSION in $CUDA_PATH/include/cuda.h: set CUDARC_CUDA_VERSION (e.g. 12080 for CUDA 12.8)"
        major=$((version / 1000))
        minor=$((version % 1000 / 10))
    fi
    version=$((major * 1000 + minor * 10))
    for candidate in "${supported[@]}"; do
        if ((candidate <= version)); then
            ((candidate == version)) ||
                echo "gpu-check: CUDA $major.$minor has no cudarc bindings; using $candidate" >&2
            echo "$candidate"
            return
        fi
    done
    die "CUDA $major.$minor is older than cudarc supports (11.4)"
}

# The driver, the toolkit where cubecl-cuda looks for it (CUDA_PATH, /usr/local/cuda,
# /opt/cuda, /usr when /usr/bin/nvcc exists), its headers, NVRTC and the bindings' version.
cuda_setup() {
    command -v nvidia-smi >/dev/null ||
        die "nvidia-smi not found: no NVIDIA driver here (--cpu checks without a GPU)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
        die "nvidia-smi failed: the driver does not answer"
    local root="${CUDA_PATH:-}" lib
    if [[ -z $root ]]; then
        for root in /usr/local/cuda /opt/cuda ""; do
            [[ -e $root ]] && break
        done
        [[ -z $root && -e /usr/bin/nvcc ]] && root=/usr
    fi
    [[ -n $root && -f $root/include/cuda.h ]] ||
        die "CUDA headers not found (no cuda.h under \$CUDA_PATH/include, /usr/local/cuda/include or /opt/cuda/include): burn compiles its kernels at run time with NVRTC, which needs the toolkit's headers. Install the CUDA toolkit (headers and NVRTC) or set CUDA_PATH."
    export CUDA_PATH=$root
    if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
        for lib in "$root/lib64" "$root/lib" "$root/targets/x86_64-linux/lib"; do
            if compgen -G "$lib/libnvrtc.so*" >/dev/null; then
                export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
                break
            fi
        done
    fi
    if [[ -z ${CUDARC_CUDA_VERSION:-} ]]; then
        CUDARC_CUDA_VERSION=$(cuda_version)
        export CUDARC_CUDA_VERSION
    fi
    echo "gpu-check: CUDA_PATH=$CUDA_PATH CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION"
}

features=()
args=(--out "$out")
if [[ $mode == gpu ]]; then
    cuda_setup
    features=(--no-default-features --features cuda)
else
    args+=(--cpu)
fi

start=$SECONDS
echo "gpu-check: building (log: $out/build.log)"
cargo build --release "${features[@]}" --example gpu_check 2>&1 | tee "$out/build.log"
built=$SECONDS

status=0
rm -f "$out/table.md"
timeout --kill-after=30 "$limit" "${CARGO_TARGET_DIR:-target}/release/examples/gpu_check" \
    "${args[@]}" 2>&1 | tee "$out/run.log" || status=$?

# The example prints its table when it ends; a run killed or crashed leaves the rows so far.
if ((status > 1)); then
    echo "gpu-check: the run stopped early (exit $status; 124 = over ${limit}s); rows so far:"
    cat "$out/table.md" 2>/dev/null || echo "(none)"
fi
echo "gpu-check: build $((built - start)) s, run $((SECONDS - built)) s; table $out/table.md," \
    "logs $out/build.log and $out/run.log"
exit "$status"

#!/usr/bin/env bash
# The GPU check: the device tests and the quick benchmarks on one device, tables in one folder.
#
#   benchmarks/gpu_check.sh                  # on a CUDA machine: --device cuda (under 8 minutes)
#   benchmarks/gpu_check.sh --device cpu     # the same on the CPU (no CUDA install)
#   benchmarks/gpu_check.sh --device cpu --smoke   # tiny sizes, well under a minute (CI)
#   benchmarks/gpu_check.sh --out DIR        # where the tables go (default: $OUT when set,
#                                            # else benchmarks/results/gpu)
#
# With --device cuda it needs nvidia-smi; when torch cannot see CUDA it installs the CUDA
# build of torch (TORCH_VERSION, default 2.13.0, from the first of TORCH_CUDA_INDEXES that
# has it), then the package (editable, no dependencies: they are torch's and the CPU
# install's). Steps that fail are logged and counted; the exit status is the number of failed
# steps (0: all passed). Writes gpu_check.md (the summary, with every table), gpu_check.log,
# environment.txt and each benchmark's JSON and Markdown into the output folder.
set -uo pipefail

device=cuda
smoke=0
out="${OUT:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --device=*) device="${1#*=}"; shift ;;
        --smoke) smoke=1; shift ;;
        --out) out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; exit 64 ;;
    esac
done
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 70
out="${out:-benchmarks/results/gpu}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/gpu_check.log"
: > "$log"
python="${PYTHON:-python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # the package even if pip cannot install
failed=0
steps=()

run_step() {  # run_step NAME COMMAND...: log it, time it, count a failure
    local name="$1"; shift
    local start=$SECONDS
    echo "== $name: $*" | tee -a "$log"
    if "$@" >> "$log" 2>&1; then
        steps+=("| $name | ok | $((SECONDS - start)) |")
    else
        steps+=("| $name | FAILED ($?) | $((SECONDS - start)) |")
        failed=$((failed + 1))
        echo "   $name failed; see $log" >&2
    fi
}

case "$device" in
    cuda*)
        if ! command -v nvidia-smi > /dev/null 2>&1; then
            echo "gpu_check.sh: --device $device but no nvidia-smi: no CUDA machine here" >&2
            exit 69
        fi
        nvidia-smi > "$out/nvidia-smi.txt" 2>&1
        if ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
            installed=0
            for index in ${TORCH_CUDA_INDEXES:-cu130 cu128 cu126}; do
                if "$python" -m pip install "torch==${TORCH_VERSION:-2.13.0}" \
                        --index-url "https://download.pytorch.org/whl/$index" >> "$log" 2>&1; then
                    installed=1; break
                fi
            done
            [ $installed = 1 ] || echo "CUDA torch not installed (see $log)" | tee -a "$log"
        fi
        run_step "install package" "$python" -m pip install --no-deps -e . ;;
    cpu) ;;
    *) echo "gpu_check.sh: --device must be cpu or cuda[:N], got $device" >&2; exit 64 ;;
esac

"$python" - > "$out/environment.txt" 2>&1 <<EOF
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__,
      "cuda build", torch.version.cuda, "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
EOF
cat "$out/environment.txt" | tee -a "$log"
if [ "$device" != cpu ] && ! grep -q "cuda available True" "$out/environment.txt"; then
    echo "gpu_check.sh: torch cannot use CUDA; stopping" | tee -a "$log" >&2
    exit 69
fi

bench="benchmarks"
if [ $smoke = 1 ]; then
    # One device test, tiny problems, ours only: the plumbing of every step, in seconds.
    run_step "device tests" "$python" -m pytest -q -p no:cacheprovider tests/test_devices.py \
        -k tensors_stay
    run_step "bench_sinkhorn --smoke" "$python" "$bench/bench_sinkhorn.py" --smoke \
        --device "$device" --peers --out "$out"
    run_step "bench_meta_sinkhorn --peers --smoke" "$python" "$bench/bench_meta_sinkhorn.py" \
        --peers --smoke --no-ott --device "$device" --out "$out"
    run_step "bench_dense_kernel --smoke" "$python" "$bench/bench_dense_kernel.py" --smoke \
        --device "$device" --out "$out"
else
    # Every test that touches devices (by name) and the device tests; then the quick benchmarks.
    # Peers run on their CPU backends, so on a GPU they are left to the CPU tables.
    peers=()
    [ "$device" = cpu ] || peers=(--peers)
    run_step "device tests" "$python" -m pytest -q -p no:cacheprovider tests/test_devices.py
    run_step "tests -k device/cuda" "$python" -m pytest -q -p no:cacheprovider -x \
        -k "(device or cuda or gpu) and not test_devices" tests
    run_step "bench_sinkhorn --quick" "$python" "$bench/bench_sinkhorn.py" --quick \
        --device "$device" "${peers[@]}" --out "$out"
    run_step "bench_dense_kernel --quick" "$python" "$bench/bench_dense_kernel.py" --quick \
        --device "$device" "${peers[@]}" --out "$out"
    run_step "bench_meta_sinkhorn --peers --quick" "$python" "$bench/bench_meta_sinkhorn.py" \
        --peers --quick --device "$device" ${peers[@]:+--no-ott} --out "$out"
    run_step "bench_meta_sinkhorn --quick (MNIST)" "$python" "$bench/bench_meta_sinkhorn.py" \
        --quick --problems mnist --device "$device" --out "$out"
fi

{
    echo "# GPU check (--device $device$([ $smoke = 1 ] && echo ' --smoke'))"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD 2>/dev/null)."
    echo
    sed 's/^/    /' "$out/environment.txt"
    [ -f "$out/nvidia-smi.txt" ] && { echo; sed -n '1,12p' "$out/nvidia-smi.txt" | sed 's/^/    /'; }
    echo
    echo "| step | status | seconds |"
    echo "|---|---|---|"
    printf '%s\n' "${steps[@]}"
    for table in "$out"/bench_*.md; do
        [ -f "$table" ] || continue
        echo
        sed 's/^# /## /' "$table"
    done
} > "$out/gpu_check.md"
echo "gpu_check: $failed failed step(s); summary in $out/gpu_check.md"
exit $failed

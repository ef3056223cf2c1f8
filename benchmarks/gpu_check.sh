#!/usr/bin/env bash
# Prove the GPU path on a real GPU: CUDA tests, speed, the queue, a fine-tune, one worker per GPU.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--data DIR] [--budget S] [--skip A,B]
       make gpu-check GPU_CHECK_ARGS='...'

On a host with a CUDA device, in at most --budget seconds after `make install` (default 480,
8 minutes), one progress line per step:
  install    make install (nothing beyond it; a no-op when .venv is up to date)
  gpu        what torch sees, and the GPUs `crackq worker` starts a process on
  parity     the CUDA cases of tests/models/test_numerics_parity.py on the real photos
  compiled   tests/models/test_compiled.py
  speed      CRACKQ_DEVICE=cuda benchmarks.run --only model,decode,inprocess (batch 256 on GPUs)
  queue      benchmarks.run --only e2e --n 5000: a real GPU worker on the first GPU
  train      a fine-tune: one epoch over 4,000 photos, bf16, one loader process per core
  hot_switch skipped, with the reason (no harness piece switches a GPU worker yet)
  multi_gpu  with 2+ GPUs, e2e through the per-GPU launcher, nvidia-smi sampled: every GPU busy
Each step has its own timeout; a failed step does not stop the next; the exit code is 1
if any step failed. Output: DIR/STEP.out (stdout: JSON lines or pytest's report),
DIR/STEP.log (stderr), DIR/steps.jsonl (one record per step), DIR/summary.txt (the table).

  --dry-run   print each step's exact command, check that the files, modules, suites' flags
              and commands exist (missing photos or services: a warning), print `dry run ok`
  --out DIR   output folder (default benchmarks/out/gpu_check/<UTC timestamp>)
  --data DIR  the ozgenel photos (default $CRACKQ_TEST_DATA or ../shared/data/ozgenel)
  --budget S  seconds for every step after install together (default 480)
  --skip A,B  steps not to run (reported as skipped)
Environment: VENV (default .venv); CRACKQ_BENCH_PG_ADMIN_URL as for the benchmarks.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${VENV:-.venv}
PY=$VENV/bin/python
DATA=${CRACKQ_TEST_DATA:-../shared/data/ozgenel}
OUT="" BUDGET=480 SKIP="" DRY=0
while (($#)); do
    case $1 in
        --dry-run) DRY=1 ;;
        --out) OUT=${2:?--out needs a folder}; shift ;;
        --data) DATA=${2:?--data needs a folder}; shift ;;
        --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
        --skip) SKIP=${2:?--skip needs step names}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $BUDGET =~ ^[0-9]+$ ]] || { echo "--budget takes whole seconds" >&2; exit 2; }
OUT=${OUT:-benchmarks/out/gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
WORKERS=$(nproc)
STEPS=(install gpu parity compiled speed queue train hot_switch multi_gpu)
declare -A TITLE=(
    [install]="make install" [gpu]="CUDA devices, the launcher's GPUs"
    [parity]="CUDA cases of the parity test" [compiled]="compiled-model tests"
    [speed]="model, decode, inprocess" [queue]="e2e, 5,000 photos, first GPU"
    [train]="fine-tune, one epoch over 4,000 photos, bf16"
    [hot_switch]="a running GPU worker to the new checkpoint" [multi_gpu]="one worker per GPU"
)
# Each step's own limit (s); the budget cuts it shorter when little is left.
declare -A LIMIT=(
    [install]=600 [gpu]=60 [parity]=200 [compiled]=150 [speed]=240 [queue]=180 [train]=180
    [hot_switch]=0 [multi_gpu]=180
)
HOT_SWITCH_REASON="no harness piece hot-switches a GPU worker: benchmarks.train_quick keeps no \
checkpoint, shutdown_stress switches to CPU INT8 only, tests/e2e/test_finetune_e2e.py expects \
cpu-openvino serving"

HOT_SWITCH_WOULD="start a GPU \`crackq worker\`, promote the fine-tuned checkpoint \
(harness/shutdown.py:set_promoted), wait for 'switched model ... (cuda-...)' in its log, then check \
that new rows carry the new version"

# The GPUs `crackq worker` starts one process each on: worker/launch.py's own answer.
launcher_gpus() {
    [[ -x $PY ]] || return 0
    "$PY" -c 'from worker.launch import gpu_indices; print(",".join(gpu_indices(None, "cuda")))' \
        2>/dev/null || true
}
GPUS=$(launcher_gpus)
FIRST_GPU=${GPUS%%,*}

# Sets ENVS (assignments) and CMD (argv) for step $1.
command_of() {
    ENVS=() CMD=()
    local bench=(CRACKQ_DEVICE=cuda "CRACKQ_BENCH_DATA=$DATA")
    local pytest=("$PY" -m pytest -q -rs -p no:cacheprovider)
    case $1 in
        install) CMD=(make install "VENV=$VENV") ;;
        gpu) CMD=("$PY" -m benchmarks.gpu_summary devices) ;;
        parity) ENVS=("CRACKQ_TEST_DATA=$DATA")
            CMD=("${pytest[@]}" tests/models/test_numerics_parity.py -k cuda) ;;
        compiled) ENVS=("CRACKQ_TEST_DATA=$DATA")
            CMD=("${pytest[@]}" tests/models/test_compiled.py) ;;
        speed) ENVS=("${bench[@]}")
            CMD=("$PY" -m benchmarks.run --only "model,decode,inprocess") ;;
        queue) ENVS=("${bench[@]}" "CUDA_VISIBLE_DEVICES=${FIRST_GPU:-0}")
            CMD=("$PY" -m benchmarks.run --only e2e --n 5000) ;;
        train) CMD=("$PY" -m benchmarks.run --suite train --data "$DATA" --train 4000 --epochs 1
            --precision bf16 --workers "$WORKERS" --device cuda --time-limit "$((${2:-180} - 30))"
            --out "$OUT/train") ;;
        hot_switch) ;;
        multi_gpu) ENVS=("${bench[@]}")
            CMD=("$PY" -m benchmarks.run --only e2e --n 5000) ;;
    esac
}

quoted() { # words as a shell would take them, quoted only where needed
    local word out=()
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then out+=("$word"); else out+=("$(printf '%q' "$word")"); fi
    done
    echo "${out[*]}"
}

shown() { quoted "${ENVS[@]}" "${CMD[@]}"; }

skip_reason() {
    case ",$SKIP," in *",$1,"*) echo "--skip $1"; return 0 ;; esac
    case $1 in
        install) if ! command -v make >/dev/null && [[ -x $PY ]]; then
            echo "make is not installed; using the existing $VENV"
        fi ;;
        hot_switch) echo "$HOT_SWITCH_REASON" ;;
        multi_gpu) if [[ $GPUS != *,* ]]; then
            echo "${GPUS:+one }${GPUS:-no} GPU visible: the per-GPU launcher starts one worker; nothing to compare"
        fi ;;
    esac
    return 0
}

dry_run() {
    local errors=0 i=0 name
    err() { echo "error: $*"; errors=$((errors + 1)); }
    for name in "${STEPS[@]}"; do
        i=$((i + 1))
        command_of "$name" "${LIMIT[$name]}"
        echo "[$i/${#STEPS[@]}] $name: ${TITLE[$name]}${CMD[0]:+ (timeout ${LIMIT[$name]} s)}"
        reason=$(skip_reason "$name")
        [[ $name == hot_switch ]] && echo "      would: $HOT_SWITCH_WOULD"
        [[ -n $reason ]] && echo "      skipped: $reason"
        [[ ${#CMD[@]} -gt 0 ]] && echo "      \$ $(shown)"
        [[ $name == multi_gpu ]] && echo "      \$ nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 -i ${GPUS:-0,1} > $OUT/multi_gpu.smi.csv &"
    done
    echo "checks:"
    for tool in timeout nproc; do command -v "$tool" >/dev/null || err "$tool is not installed"; done
    command -v make >/dev/null || echo "warning: no make: the install step is skipped"
    command -v nvidia-smi >/dev/null || echo "warning: no nvidia-smi: this host has no NVIDIA GPU"
    [[ -x $PY ]] || err "$PY missing: run make install"
    for f in tests/models/test_numerics_parity.py tests/models/test_compiled.py benchmarks/run.py \
        benchmarks/speed.py benchmarks/train_quick.py benchmarks/gpu_summary.py worker/launch.py; do
        [[ -f $f ]] || err "$f missing"
    done
    [[ -d $DATA/Positive && -f $DATA/manifest.csv ]] ||
        echo "warning: no photos at $DATA (--data DIR): parity and train fail, the benchmarks draw synthetic photos"
    if [[ -x $PY ]]; then
        local lines=()
        for name in speed queue train multi_gpu; do
            command_of "$name" "${LIMIT[$name]}"
            lines+=("$(quoted "${CMD[@]:3}")") # what follows `-m benchmarks.run`
        done
        "$PY" -m benchmarks.gpu_summary check "${lines[@]}" || errors=$((errors + 1))
        for name in parity compiled; do
            command_of "$name"
            env "${ENVS[@]}" "${CMD[@]}" --collect-only >/dev/null 2>&1 ||
                err "$name: pytest collects no test (add --collect-only to its command to see why)"
        done
    fi
    ((errors == 0)) || { echo "dry run failed (the errors above)"; return 1; }
    echo "dry run ok"
}

if ((DRY)); then
    dry_run
    exit $?
fi

mkdir -p "$OUT"
echo "GPU check: output in $OUT; budget $BUDGET s after install; launcher GPUs ${GPUS:-none}"
trap 'echo "interrupted" >&2; exit 130' INT
T0=$SECONDS
START=$SECONDS
i=0
for name in "${STEPS[@]}"; do
    i=$((i + 1))
    echo "[$i/${#STEPS[@]}] $name: ${TITLE[$name]} ... (t+$((SECONDS - T0)) s)"
    reason=$(skip_reason "$name")
    [[ $name == hot_switch ]] && echo "      would: $HOT_SWITCH_WOULD"
    if [[ -n $reason ]]; then
        "$PY" -m benchmarks.gpu_summary record "$OUT" "$name" --skipped "$reason"
        continue
    fi
    limit=${LIMIT[$name]}
    if [[ $name != install ]]; then # 25 s kept: a SIGKILL 20 s after the SIGINT, the table
        left=$((BUDGET - (SECONDS - START) - 25))
        ((left < limit)) && limit=$left
        if ((limit < 30)); then
            "$PY" -m benchmarks.gpu_summary record "$OUT" "$name" --not-run "the $BUDGET s budget is spent"
            continue
        fi
    fi
    command_of "$name" "$limit"
    echo "      \$ $(shown)  (timeout $limit s)" | tee -a "$OUT/commands.txt"
    smi=""
    if [[ $name == multi_gpu ]]; then
        nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits \
            -lms 500 -i "$GPUS" >"$OUT/multi_gpu.smi.csv" 2>>"$OUT/multi_gpu.log" &
        smi=$!
    fi
    t=$SECONDS rc=0
    # SIGINT first: the suites then stop their workers and drop their databases.
    timeout --signal=INT --kill-after=20 "$limit" env "${ENVS[@]}" "${CMD[@]}" \
        >"$OUT/$name.out" 2>"$OUT/$name.log" || rc=$?
    [[ -n $smi ]] && { kill "$smi" 2>/dev/null || true; wait "$smi" 2>/dev/null || true; }
    if [[ $name == install ]]; then
        START=$SECONDS GPUS=$(launcher_gpus)
        FIRST_GPU=${GPUS%%,*}
    fi
    "$PY" -m benchmarks.gpu_summary record "$OUT" "$name" --rc "$rc" --seconds "$((SECONDS - t))" \
        --limit "$limit" --command "$(shown)" || echo "      (could not record $name)"
done
echo
rc=0
"$PY" -m benchmarks.gpu_summary table "$OUT" | tee "$OUT/summary.txt" || rc=$?
exit "$rc"

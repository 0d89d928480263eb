#!/usr/bin/env bash
# Full mode of experiments/paper_table.py on one GPU, within about 8 minutes.
#
#   bash experiments/gpu.sh [OUT_DIR]          # default OUT_DIR: $OUT if set, else experiments/results/gpu
#
# Writes OUT_DIR/paper_table.json, OUT_DIR/paper_table.md, OUT_DIR/paper_table.log and
# OUT_DIR/environment.txt (nvidia-smi, torch). The table is rewritten after every
# configuration, so whatever finished before a time-out is still collected. The chromatin
# (fourth-order) rows run first; configurations not started within the budget are listed as
# skipped in the JSON.
#
# Dry run without a GPU (what the tests do): BENCH_DEVICE=cpu BENCH_MODE=tiny bash experiments/gpu.sh /tmp/x
# PYTHON names the interpreter (default: python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-experiments/results/gpu}}"
DEVICE="${BENCH_DEVICE:-cuda}"
MODE="${BENCH_MODE:-full}"
BUDGET_S="${BENCH_BUDGET_S:-390}"     # start no new configuration after this (s)
LIMIT_S="${BENCH_LIMIT_S:-460}"       # hard stop (s); 8 min = 480 s
PY="${PYTHON:-python}"
mkdir -p "$OUT_DIR"
export DDE_BACKEND=pytorch
{
  date -u
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi; fi
} > "$OUT_DIR/environment.txt" 2>&1 || true
if [ "$DEVICE" != "cpu" ]; then
  "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'CUDA is not available: set BENCH_DEVICE=cpu for a dry run')"
fi
rc=0
timeout "$LIMIT_S" "$PY" experiments/paper_table.py "--$MODE" --device "$DEVICE" --in-process \
  --budget-s "$BUDGET_S" --out "$OUT_DIR" 2>&1 | tee "$OUT_DIR/paper_table.log" || rc=$?
echo "gpu.sh: exit $rc; results in $OUT_DIR" | tee -a "$OUT_DIR/paper_table.log"
exit "$rc"

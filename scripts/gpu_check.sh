#!/usr/bin/env bash
# The first GPU numbers in one call (issue 23): from the repository root,
#   scripts/gpu_check.sh                 on a CUDA machine (about 9 minutes, self-enforced)
#   scripts/gpu_check.sh --dry-run-cpu   the same phases on CPU with tiny sizes (about a minute)
# Phases, each under its own budget (seconds; GPU_CHECK_<PHASE>_S overrides):
#   prep   decode the JPEG archive once into bench's uint8 cache (a one-step CPU run; untimed)
#   tests  the CUDA-marked tests (pytest -m cuda)
#   race   cifar10-94 --versus airbench94 on the JPEG archive, interleaved seeds until the budget
#   specs  bench specs --device cuda for the zoo at batch 256
# then scripts/gpu_summary.py writes $OUT/summary.md and summary.json (always, whatever stopped).
# At a budget a phase gets SIGINT (bench and pytest stop cleanly and keep what finished; bench
# exits 130), then SIGKILL GRACE seconds later. Everything lands under $OUT (default ./gpu-out).
# Only bench's CLI and its JSON files are used, never its modules, so its internals can move.
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
GRACE_S="${GPU_CHECK_GRACE_S:-15}"

log() {
    printf '[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/gpu_check.log" >&2
}

die() {  # one line, what and what to do; exit 2 (bad input, as bench's own)
    printf 'gpu_check: %s\n' "$*" >&2
    exit 2
}

# run_phase NAME BUDGET_S CMD...: CMD's output goes to $OUT/logs/NAME.log; the outcome
# (finished | stopped-at-budget | killed-after-grace), exit code, budget and seconds used
# are appended to $OUT/phases.tsv. Never fails the script: the next phase still runs.
run_phase() {
    local name=$1 budget=$2 start=$SECONDS rc outcome
    shift 2
    log "$name: up to $budget s: $*"
    # timeout installs its own SIGINT handler before it starts CMD, so CMD gets SIGINT's default
    # back even where this script was started with SIGINT ignored (a background job without
    # job control): the budget's SIGINT always reaches bench and pytest.
    timeout -s INT -k "$GRACE_S" "$budget" "$@" >"$OUT/logs/$name.log" 2>&1
    rc=$?
    case $rc in
        124) outcome=stopped-at-budget ;;
        137) outcome=killed-after-grace ;;
        *) outcome=finished ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$outcome" "$rc" "$budget" "$((SECONDS - start))" >>"$OUT/phases.tsv"
    log "$name: $outcome (exit $rc) after $((SECONDS - start)) s"
    return 0
}

# Stops with one line naming every missing package that bench run needs; says what the
# optional ones cost. Extra packages can travel in .data/pydeps (pip install --target).
check_packages() {
    local missing
    missing=$("$PY" - <<'EOF'
import importlib.util
required = ["torch", "numpy", "PIL", "rich", "jsonschema"]  # bench run and bench specs import these
print(" ".join(m for m in required if importlib.util.find_spec(m) is None))
EOF
    ) || die "cannot run $PY: set PYTHON to a Python 3.11+ with torch"
    [ -z "$missing" ] || die "missing Python packages: $missing (bench needs them; install them, or bring them in .data/pydeps made with pip install --target .data/pydeps $missing)"
    for optional in "pytest:the tests phase is skipped" "triton:the resident loader uses the torch reference instead of the fused kernel" "pynvml:energy and NVML memory are null"; do
        "$PY" -c "import ${optional%%:*}" 2>/dev/null || log "note: ${optional%%:*} is not installed: ${optional#*:}"
    done
}

# The real archive: $GPU_CHECK_ARCHIVE, else .data/, shared/data/ or ../shared/data/ of the checkout.
find_archive() {
    local candidate
    for candidate in "${GPU_CHECK_ARCHIVE:-}" "$ROOT/.data/cifar10-jpeg.tar.xz" \
                     "$ROOT/shared/data/cifar10-jpeg.tar.xz" "$ROOT/../shared/data/cifar10-jpeg.tar.xz"; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    die "cifar10-jpeg.tar.xz not found in .data/, shared/data/ or ../shared/data/: copy it to $ROOT/.data/ (or set GPU_CHECK_ARCHIVE to its path)"
}

# Mode settings: budgets, sizes and the extra --set overrides. The dry run shrinks the data,
# the network and the epochs so that each phase runs in seconds on two CPU cores.
configure() {
    if [ "$DRY_RUN" = 1 ]; then
        DEVICE=cpu
        # the race runs until its budget by design: 15 s holds several tiny runs of each suite
        # (passed beside a 2-thread job on the 2-core CI machine) and keeps `make test` short
        BUDGET_PREP=60 BUDGET_TESTS=60 BUDGET_RACE=15 BUDGET_SPECS=40
        SIZE_SET=(--set recipe.epochs=1 --set recipe.batch_size=50 --set recipe.eval_batch_size=100
                  --set 'model.args={widths=[8,16,16]}')
        SPECS_ARGS=(--device cpu --models tiny,lenet5 --batch 8 --repeats 2 --warmup 1)
        # under Triton's interpreter the 1100x1000-pixel kernel case alone takes 35 s of CPU
        TEST_ARGS=(-k "not large_images")
    else
        DEVICE=cuda
        BUDGET_PREP=45 BUDGET_TESTS=110 BUDGET_RACE=290 BUDGET_SPECS=60
        SIZE_SET=()
        SPECS_ARGS=(--device cuda --batch 256)
        TEST_ARGS=()
    fi
    BUDGET_PREP=${GPU_CHECK_PREP_S:-$BUDGET_PREP}
    BUDGET_TESTS=${GPU_CHECK_TESTS_S:-$BUDGET_TESTS}
    BUDGET_RACE=${GPU_CHECK_RACE_S:-$BUDGET_RACE}
    BUDGET_SPECS=${GPU_CHECK_SPECS_S:-$BUDGET_SPECS}
}

setup_data() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")" || die "cannot make a work folder under ${TMPDIR:-/tmp}"
    trap 'rm -rf "$WORK"' EXIT  # the decoded cache (184 MB for the real set) stays out of $OUT
    mkdir -p "$WORK/data"
    if [ "$DRY_RUN" = 1 ]; then
        "$PY" "$HERE/make_tiny_jpeg_archive.py" "$WORK/data/cifar10-jpeg.tar.xz" --train 20 --test 10 \
            || die "could not make the dry run's tiny JPEG archive (see the error above)"
    else
        ln -s "$(cd "$(dirname "$ARCHIVE")" && pwd)/$(basename "$ARCHIVE")" "$WORK/data/cifar10-jpeg.tar.xz"
    fi
    export BENCH_DATA="$WORK/data"  # bench finds cifar10-jpeg.tar.xz here and caches the arrays beside it
}

phase_prep() {
    # One tiny run on CPU: loading the data set decodes the whole archive and writes the
    # prepared cache; the subset, network and single step only keep the run short.
    run_phase prep "$BUDGET_PREP" "$PY" -m bench run cifar10-94 --runs 1 --device cpu \
        --offline --compile off --results "$OUT/prep" --set 'dataset.name="cifar10-jpeg"' \
        --set dataset.train_size=100 --set dataset.test_size=100 --set recipe.epochs=1 \
        --set recipe.batch_size=50 --set recipe.eval_batch_size=100 --set 'model.args={widths=[8,16,16]}'
}

phase_tests() {
    local files
    files=$(cd "$ROOT" && grep -l 'pytest.mark.cuda' tests/*.py tests/*/*.py 2>/dev/null)
    if ! "$PY" -c "import pytest" 2>/dev/null || [ -z "$files" ]; then
        printf 'tests\tskipped\t-\t%s\t0\n' "$BUDGET_TESTS" >>"$OUT/phases.tsv"
        log "tests: skipped (no pytest, or no file marks a test cuda)"
        return 0
    fi
    # shellcheck disable=SC2086  # the file list splits on purpose
    run_phase tests "$BUDGET_TESTS" "$PY" -m pytest -m cuda -q -p no:cacheprovider \
        --junitxml="$OUT/tests/junit.xml" "${TEST_ARGS[@]}" $files
}

phase_race() {
    # One invocation with more runs than fit, stopped at the budget: each suite compiles once
    # and loads the data once, the seeds interleave across the whole race, and the two result
    # files hold every finished run (status interrupted, the run in flight dropped).
    run_phase race "$BUDGET_RACE" "$PY" -m bench run cifar10-94 --versus airbench94 \
        --runs 1000 --device "$DEVICE" --offline --results "$OUT/results/runs" \
        --set 'dataset.name="cifar10-jpeg"' "${SIZE_SET[@]}"
}

phase_specs() {
    run_phase specs "$BUDGET_SPECS" "$PY" -m bench specs "${SPECS_ARGS[@]}" --format md \
        --out "$OUT/specs"
}

main() {
    DRY_RUN=0
    case "${1:-}" in
        --dry-run-cpu) DRY_RUN=1 ;;
        "") ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
        *) die "unknown option '$1': use --dry-run-cpu or nothing" ;;
    esac
    [ $# -le 1 ] || die "one option at most (--dry-run-cpu)"
    cd "$ROOT" || die "cannot enter $ROOT"
    OUT="${OUT:-$ROOT/gpu-out}"
    mkdir -p "$OUT/logs" "$OUT/tests" "$OUT/results/runs" "$OUT/specs" || die "cannot write to $OUT"
    OUT="$(cd "$OUT" && pwd)"
    : >"$OUT/phases.tsv"
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    [ -d "$ROOT/.data/pydeps" ] && export PYTHONPATH="$PYTHONPATH:$ROOT/.data/pydeps"
    check_packages
    configure
    if [ "$DRY_RUN" = 0 ]; then
        ARCHIVE="$(find_archive)" || exit 2
        "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
            || die "torch sees no CUDA device: on a machine without a GPU run scripts/gpu_check.sh --dry-run-cpu"
    fi
    setup_data
    log "mode: $([ "$DRY_RUN" = 1 ] && echo "CPU dry run" || echo GPU); results under $OUT"
    phase_prep
    phase_tests
    phase_race
    phase_specs
    "$PY" "$HERE/gpu_summary.py" "$OUT" --mode "$([ "$DRY_RUN" = 1 ] && echo dry-run-cpu || echo gpu)" \
        || log "the summary failed (see above); the result files are under $OUT"
    log "done in $SECONDS s"
}

# Sourcing the file (as the tests do, to try run_phase alone) defines the functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi

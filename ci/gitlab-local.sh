#!/bin/sh
# Runs .gitlab-ci.yml with the real engine runner, gitlab-ci-local (shell
# executor, --concurrency 2), over a reduced matrix (the three patches
# before the tip, boot rows of the default config, plan `commit`), then:
#   1. `kmm ci report` over the pipeline's artifacts must give the rows and
#      verdicts of one `kmm ci` process over the same rows (times and log
#      paths aside);
#   2. in a scratch copy with one snapshot edited, the pipeline must fail
#      in its report job, naming that row.
# The jobs share this machine's kmm cache and ccache (a runner with a
# persistent cache), so their builds are incremental; kmm's workspace lock
# keeps their kernel builds one at a time.
set -eu
cd "$(dirname "$0")/.."

tools=${KMM_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm-tools}
gcl="$tools/npm/node_modules/.bin/gitlab-ci-local"
[ -x "$gcl" ] || { echo "ci/gitlab-local.sh: no $gcl; run ci/setup.sh" >&2; exit 2; }
kmm=$(pwd)/target/release/kmm
[ -x "$kmm" ] || cargo build --release --locked -p kmm
cache=${KMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm}
ccache_dir=$(ccache -k cache_dir 2>/dev/null || echo "$HOME/.cache/ccache")
# The three patches before the tip, plan `commit`: the last commit of a
# --commits range gets the tip plan, hence --tip-plan commit (the real
# tip with plan `commit` would need a snapshot that the full default run
# calls stale).
last=$(ls patches/v"$(sed -n '/^\[series\]/,/^\[/s/^version = \([0-9]*\)/\1/p' patches/series.toml)" | grep -c '^[0-9]*-.*\.patch$')
last=$((last - 2))
args="--commits $((last - 2))..$last --tip-plan commit"
out=$(pwd)/target/gitlab-local
rm -rf "$out" results .gitlab-ci-local
mkdir -p "$out"

# The pipeline runs in a git repository of its own made from this tree
# (gitlab-ci-local needs one, and CI may hand us a tree without .git):
# the files as they are here, build products and results left out.
copy() { # dest
	mkdir -p "$1"
	tar --exclude=./target --exclude=./.git --exclude=./results --exclude=./.gitlab-ci-local \
		--exclude=./kvm-mm/target --exclude='./tools/ktap/tests/kunit-corpus' -cf - . | tar -xf - -C "$1"
	(cd "$1" && git init -q && git add -A &&
		git -c user.name=kmm -c user.email=kmm@kvm-mm.invalid commit -qm "kmm ci pipeline under gitlab-ci-local")
}
tree="$out/tree"
copy "$tree"

run_pipeline() { # dir, KMM_CI_ARGS, log
	(cd "$1" && "$gcl" --concurrency 2 \
		--variable "KMM_CI_ARGS=$2" \
		--variable "KMM_PREBUILT=$kmm" \
		--variable "KMM_CACHE_DIR=$cache" \
		--variable "CCACHE_DIR=$ccache_dir" >"$3" 2>&1)
}

t0=$(date +%s)
if ! run_pipeline "$tree" "$args" "$out/pipeline.log"; then
	tail -40 "$out/pipeline.log"
	echo "ci/gitlab-local.sh: the pipeline failed; log in $out/pipeline.log" >&2
	exit 1
fi
t1=$(date +%s)
"$kmm" ci report "$tree/results" --format json >"$out/report.json"
t2=$(date +%s)
# shellcheck disable=SC2086
"$kmm" ci $args --format json >"$out/single.json" 2>"$out/single.log"
t3=$(date +%s)
python3 - "$out/report.json" "$out/single.json" <<'PY'
import json, sys
# Timings differ from run to run, and so does the way a row reached its
# verdict: a boot that hit a named flake (kmm_ci::flakes::KNOWN) was booted
# again, and "flaky"/"retries" record it. The verdict must be equal.
def rows(p):
    out, retried = [], []
    for r in json.load(open(p)):
        for k in ("seconds", "build_secs", "boot_secs", "first_ktap_secs", "console_log"):
            r.pop(k, None)
        if r.pop("retries", None):
            retried.append(r["label"])
        r.pop("flaky", None)
        out.append(r)
    for label in retried:
        print(f"ci/gitlab-local.sh: {p}: {label} was retried for a named flake")
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    for x, y in zip(a, b):
        if x != y:
            print("differs:", json.dumps(x), json.dumps(y), sep="\n")
    sys.exit("ci/gitlab-local.sh: the pipeline's report differs from one kmm ci process")
print(f"ci/gitlab-local.sh: the pipeline's report equals one kmm ci process: {len(a)} rows, "
      f"{sum(r['failed'] for r in a)} failed")
PY
echo "ci/gitlab-local.sh: pipeline $((t1 - t0))s (report $((t2 - t1))s), one process $((t3 - t2))s over the same rows"

# A row made to fail: a scratch copy with the snapshot of the second of
# those patches edited.
scratch="$out/scratch"
copy "$scratch"
snap=$(find "$scratch/selftests/snapshots/kvm-mm/commit" -name "$(printf %04d $((last - 1)))-*.snap" | head -1)
[ -n "$snap" ] || { echo "ci/gitlab-local.sh: no commit snapshot of patch $((last - 1))" >&2; exit 1; }
sed -i '0,/: pass$/s//: fail/' "$snap"
(cd "$scratch" && git -c user.name=kmm -c user.email=kmm@kvm-mm.invalid commit -qam "an edited snapshot")
row="$(basename "$snap" .snap)/kvm-mm/commit"
if run_pipeline "$scratch" "--commits $((last - 1))..$((last - 1)) --tip-plan commit" "$out/fail.log"; then
	echo "ci/gitlab-local.sh: the pipeline passed with an edited snapshot" >&2
	exit 1
fi
if ! grep -q "^report .*FAILED $row: snapshot CHANGED" "$out/fail.log"; then
	tail -40 "$out/fail.log"
	echo "ci/gitlab-local.sh: the failing pipeline's report does not name $row" >&2
	exit 1
fi
echo "ci/gitlab-local.sh: the edited snapshot fails the report job, naming $row"

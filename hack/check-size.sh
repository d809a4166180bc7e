#!/usr/bin/env bash
# Fails when a file tracked by git is larger than the limit (default 5 MB):
# binaries and build outputs never belong in the repository.
#
# usage: hack/check-size.sh [max-bytes]   (run inside the work tree to check)
set -euo pipefail
max=${1:-5000000}
big=$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk -v max="$max" '$1 > max {print "  " $2 " (" $1 " bytes)"}')
if [ -n "$big" ]; then
  echo "tracked files over $max bytes (git rm --cached them and ignore them):"
  echo "$big"
  exit 1
fi

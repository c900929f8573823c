#!/usr/bin/env bash
# Run the test suite in the environment scripts/setup.sh built.
# Arguments go to pytest: scripts/test.sh test/test_package.py -k version
# With none, pytest.ini decides (testpaths = test).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -f "$repo/env.sh" ]]; then
    echo "test: $repo/env.sh is missing: run scripts/setup.sh first" >&2
    exit 1
fi
source "$repo/env.sh"
cd "$repo"
exec python -m pytest "$@"

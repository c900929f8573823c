"""Where the package's data files are: the source tree, else the installed share directory."""
from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir() -> str | None:
    """The installed share/dp_ros directory, or None when the package is not installed."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return get_package_share_directory("dp_ros")
    except (PackageNotFoundError, OSError, KeyError, ValueError):
        return None


def package_file(*parts: str) -> Path:
    """A data file of the package (``package_file("config", "policy.yaml")``): from the
    source tree when running from a checkout, else from share/dp_ros."""
    for base in (SOURCE_ROOT, share_dir()):
        if base and Path(base, *parts).is_file():
            return Path(base, *parts)
    raise FileNotFoundError(f"{'/'.join(parts)} not found in {SOURCE_ROOT} or share/dp_ros "
                            "(is dp_ros built with scripts/setup.sh or colcon?)")

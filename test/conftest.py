"""Test-session setup shared by every test module.

pytest imports this file before any test module, so the environment defaults set
here are in place before anything imports rclpy (rclpy reads them at init):

- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: the default range multicasts on the
  machine's network interface.
- ROS_DOMAIN_ID: one value in 1..101 per pytest process, derived from its pid, so
  test runs that happen in parallel do not see each other's topics.
- MUJOCO_GL=egl: headless rendering, as ``sim.scene.SimArm`` sets it. MuJoCo reads it
  once, when first imported: a test importing mujoco before any SimArm exists would
  otherwise leave every later renderer of the session on GLFW, which needs a display
  (the renderer then hangs or fails).

All are defaults: a value already in the environment wins.

Fast DDS keeps its shared-memory transport in /dev/shm (fastdds_*, sem.fastdds_*);
a process that dies without shutting ROS down leaves them behind. At the end of the
session we remove the ones that appeared during it and that no other live process
still has open or mapped.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 101))
os.environ.setdefault('MUJOCO_GL', 'egl')

SHM_DIR = Path('/dev/shm')
SHM_PATTERNS = ('fastdds_*', 'sem.fastdds_*')


def _fastdds_shm_files():
    if not SHM_DIR.is_dir():
        return set()
    return {path for pattern in SHM_PATTERNS for path in SHM_DIR.glob(pattern)}


def _paths_in_use_by_other_processes():
    """Paths under /dev/shm that another process has mapped or open."""
    in_use = set()
    own_pid = str(os.getpid())
    for proc in Path('/proc').iterdir():
        if not proc.name.isdigit() or proc.name == own_pid:
            continue
        try:
            for line in (proc / 'maps').read_text().splitlines():
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith('/dev/shm/'):
                    in_use.add(fields[5].removesuffix(' (deleted)'))
            for fd in (proc / 'fd').iterdir():
                target = os.readlink(fd)
                if target.startswith('/dev/shm/'):
                    in_use.add(target)
        except OSError:
            continue  # the process exited, or we may not look at it
    return in_use


_SHM_AT_START = _fastdds_shm_files()

pytest_plugins = [
    "policy_rig",  # the policy node test rig's fixtures: checkpoint, rig
    "exported_models",  # tiny checkpoints exported to ONNX once per session: exported, ckpt_copy
]


def pytest_sessionfinish(session, exitstatus):
    new_files = _fastdds_shm_files() - _SHM_AT_START
    if not new_files:
        return
    in_use = _paths_in_use_by_other_processes()
    for path in sorted(new_files):
        if str(path) not in in_use:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


@pytest.fixture
def ros():
    """A fresh rclpy context for one test (nodes of different tests never meet)."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)

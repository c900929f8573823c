"""Helpers shared by the node shells: time conversion, image messages, parameters."""
from __future__ import annotations

import threading

import numpy as np
from builtin_interfaces.msg import Duration, Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from sensor_msgs.msg import CompressedImage

from dp_ros.imaging import decode_compressed, decode_image, resize_rgb


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_time(t: float) -> Time:
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def sec_to_duration(t: float) -> Duration:
    ns = int(round(t * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def pose_positions(msg) -> np.ndarray:
    """geometry_msgs/PoseArray -> (3 * n,) float64: x, y, z of each pose, in message order
    (a state key's vector; orientations are not used)."""
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses], dtype=np.float64).reshape(-1)


def image_msg_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB at its own size;
    ValueError (ImageError) with the reason if it cannot be decoded."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)


def declare_read_only(node, name: str, default, text: str, lo=None, hi=None, integer: bool = False):
    """Declare a read-only parameter with its description (and range); return its value."""
    return node.declare_parameter(name, default, describe(text, read_only=True, lo=lo, hi=hi,
                                                          integer=integer)).value


class AspectWarner:
    """Logs once per camera when resizing changes the aspect ratio by more than 2%."""

    def __init__(self, logger):
        self.logger = logger
        self.warned: set[str] = set()

    def resize(self, camera: str, rgb: np.ndarray, height: int, width: int) -> np.ndarray:
        h, w = rgb.shape[:2]
        if camera not in self.warned and abs(w / h - width / height) > 0.02 * width / height:
            self.warned.add(camera)
            self.logger.warning(f"camera {camera}: {w}x{h} images are resized to {width}x{height}, "
                                "which changes the aspect ratio")
        return resize_rgb(rgb, height, width)


def describe(text: str, read_only: bool = False, lo=None, hi=None, integer: bool = False) -> ParameterDescriptor:
    d = ParameterDescriptor(description=text, read_only=read_only)
    if lo is not None:
        if integer:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return d


class JointPicker:
    """Picks a fixed list of joints, in order, out of sensor_msgs/JointState messages.

    ``pick(names, positions)`` returns ``(positions, None)``, ``(None, reason)`` for a
    message that names some of the joints but is unusable (a missing joint, repeated
    names, too few positions, NaN), or ``(None, None)`` for a message about other joints
    only, which is not ours to judge. The name-to-index map is cached per name list.
    """

    def __init__(self, joint_names, label: str = "joint_states"):
        self.joint_names = tuple(joint_names)
        self.label = label
        self._cache: dict[tuple[str, ...], list[int] | str | None] = {}

    def _index(self, names) -> list[int] | str | None:
        key = tuple(names)
        if key in self._cache:
            return self._cache[key]
        where = {n: i for i, n in enumerate(key)}
        if len(where) != len(key):
            idx = f"{self.label}: repeated joint names in {list(key)}"
        elif not any(j in where for j in self.joint_names):
            idx = None
        else:
            missing = [j for j in self.joint_names if j not in where]
            idx = f"{self.label}: missing joints {missing}" if missing else [where[j] for j in self.joint_names]
        if len(self._cache) < 64:
            self._cache[key] = idx
        return idx

    def pick(self, names, positions) -> tuple[np.ndarray | None, str | None]:
        idx = self._index(names)
        if idx is None or isinstance(idx, str):
            return None, idx
        if len(positions) != len(names):
            return None, f"{self.label}: {len(positions)} positions for {len(names)} names"
        q = np.array([positions[i] for i in idx], dtype=float)
        if not np.all(np.isfinite(q)):
            bad = [self.joint_names[i] for i in np.nonzero(~np.isfinite(q))[0]]
            return None, f"{self.label}: NaN or infinite position for {bad}"
        return q, None


def call_service(client, request, timeout: float = 10.0):
    """Call a service from a thread other than the executor's (which must be spinning);
    RuntimeError naming the service when it is absent or does not answer in time."""
    import time

    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f"service {client.srv_name} is not available")
    future = client.call_async(request)
    end = time.monotonic() + timeout
    while not future.done():
        if time.monotonic() > end:
            raise RuntimeError(f"service {client.srv_name} did not answer within {timeout} s")
        time.sleep(0.005)
    return future.result()


class InProcessNodes:
    """Several nodes in this process, as a launch file would start them: ``rclpy.init``
    with the given parameter files (matched by node name), ``add()`` each node as it is
    built; ``sim.lockstep.start_clock`` then runs them (in lockstep or real time).
    Leaving the ``with`` block destroys the nodes (last first, also those built before a
    failing constructor) and shuts rclpy down."""

    def __init__(self, params_files=()):
        import rclpy

        self._rclpy = rclpy
        rclpy.init(args=["--ros-args", *[a for f in params_files for a in ("--params-file", str(f))]])
        self.nodes: list = []

    def add(self, node):
        self.nodes.append(node)
        return node

    def __enter__(self) -> "InProcessNodes":
        return self

    def __exit__(self, *exc) -> None:
        for n in reversed(self.nodes):
            n.destroy_node()
        self._rclpy.try_shutdown()


def spin_node(make_node, name: str, args=None) -> int:
    """Run one node until SIGINT or SIGTERM, then stop it cleanly; the exit code.

    ``ros2 launch`` forwards Ctrl-C to each node, which also gets it from the terminal:
    two SIGINTs, in any order, possibly while the node is already stopping. rclpy's own
    handlers turn a signal into a KeyboardInterrupt wherever the main thread happens to
    be (in a callback, or in the middle of the clean-up), so they are not installed:
    a signal only sets a flag, the executor spins in short slices until it is set, and
    then the node's ``shutdown()`` (if it has one: the last safe command, closing
    files) runs before it is destroyed. More signals while stopping are ignored
    (``ros2 launch`` escalates to SIGKILL if a node does not stop).
    A start-up error is logged, exit code 1.
    """
    import signal

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()

    def on_signal(*_):
        stop.set()
        # From now on signals are ignored, also while Python finalizes (it puts back the
        # default action, death by signal, for handlers it installed, but not for SIG_IGN).
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            node = make_node()
        except Exception as exc:  # bad parameters, an unusable checkpoint or dataset
            rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
            if hasattr(node, "shutdown"):
                node.shutdown()
        finally:
            executor.shutdown()
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return 0

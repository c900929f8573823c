"""Helpers shared by the node shells: time conversion, image messages, parameters."""
from __future__ import annotations

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


def image_msg_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB at its own size;
    ValueError (ImageError) with the reason if it cannot be decoded."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)


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

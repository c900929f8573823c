"""Camera images to (H, W, 3) uint8 RGB arrays (numpy and cv2 only, no ROS imports).

The node shells pass the plain fields of sensor_msgs/Image and CompressedImage, so this
module can be tested, and reused, without ROS. Encoding names are those of
sensor_msgs/image_encodings.hpp.

Every decoder returns a C-contiguous copy that owns its memory: the message buffer
can be reused by the middleware as soon as the callback returns.
"""
from __future__ import annotations

import cv2
import numpy as np


class ImageError(ValueError):
    """The image cannot be decoded; the message says what is wrong with it."""


# OpenCV names a Bayer pattern by the colours of the second row's second and third
# pixels, which is the ROS name shifted by one pixel diagonally: ROS bayer_rggb8 is
# OpenCV's BayerBG (recent OpenCV also spells it COLOR_BayerRGGB2RGB). cv_bridge uses
# the same mapping; test_imaging.py checks it with single-colour scenes.
#
# encoding -> (channels, bytes per channel, cv2 conversion to RGB; None: already RGB)
_FORMATS: dict[str, tuple[int, int, int | None]] = {
    'rgb8': (3, 1, None),
    'bgr8': (3, 1, cv2.COLOR_BGR2RGB),
    'rgba8': (4, 1, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, 1, cv2.COLOR_BGRA2RGB),
    'mono8': (1, 1, cv2.COLOR_GRAY2RGB),
    '8UC1': (1, 1, cv2.COLOR_GRAY2RGB),
    '8UC3': (3, 1, cv2.COLOR_BGR2RGB),
    '8UC4': (4, 1, cv2.COLOR_BGRA2RGB),
    'mono16': (1, 2, cv2.COLOR_GRAY2RGB),
    '16UC1': (1, 2, cv2.COLOR_GRAY2RGB),
    'rgb16': (3, 2, None),
    'bgr16': (3, 2, cv2.COLOR_BGR2RGB),
    'bayer_rggb8': (1, 1, cv2.COLOR_BayerBG2RGB),
    'bayer_bggr8': (1, 1, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': (1, 1, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': (1, 1, cv2.COLOR_BayerGB2RGB),
    # (channels = 2: one luma byte and one chroma byte per pixel)
    'yuv422': (2, 1, cv2.COLOR_YUV2RGB_UYVY),  # the deprecated name of uyvy
    'uyvy': (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, 1, cv2.COLOR_YUV2RGB_YUYV),  # the deprecated name of yuyv
    'yuyv': (2, 1, cv2.COLOR_YUV2RGB_YUYV),
}

SUPPORTED_ENCODINGS = tuple(_FORMATS)


def _as_bytes(data, what: str) -> np.ndarray:
    """Any bytes-like buffer (bytes, bytearray, memoryview, array.array('B'), uint8
    ndarray) -> flat uint8 array, a view where the buffer allows it."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageError(f"{what} data must be uint8, got a {data.dtype} array")
        return np.ascontiguousarray(data).reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as e:
        raise ImageError(f"{what} data must be bytes-like, got {type(data).__name__}") from e


def decode_image(encoding: str, height: int, width: int, step: int, is_bigendian: bool, data) -> np.ndarray:
    """sensor_msgs/Image fields -> (height, width, 3) uint8 RGB, C-contiguous, a copy.

    16-bit encodings keep their most significant byte (value >> 8). Rows are read with
    stride ``step``; padding at the end of each row and bytes after the last row are
    ignored.
    """
    if encoding not in _FORMATS:
        raise ImageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, depth, conversion = _FORMATS[encoding]
    if height <= 0 or width <= 0:
        raise ImageError(f"image size must be positive, got {height} rows x {width} columns")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageError(
            f"image step {step} is shorter than a row: {width} pixels x {channels * depth} bytes "
            f"({encoding}) = {row_bytes}")
    if channels == 2 and width % 2:
        raise ImageError(f"{encoding} packs pixel pairs: width must be even, got {width}")
    buf = _as_bytes(data, 'image')
    if buf.size < step * height:
        raise ImageError(f"image data has {buf.size} bytes; {height} rows x step {step} needs {step * height}")

    rows = buf[:step * height].reshape(height, step)[:, :row_bytes]  # (H, step) -> (H, W*C*depth), a view
    if depth == 2:
        # Keep each 16-bit value's high byte: the first of its pair when big-endian.
        rows = rows[:, 0::2] if is_bigendian else rows[:, 1::2]  # (H, W*C*2) -> (H, W*C)
    pixels = rows.reshape(height, width, channels) if channels > 1 else rows  # (H, W, C) or (H, W)
    if conversion is None:
        return np.array(pixels, dtype=np.uint8, order='C', copy=True)
    return np.ascontiguousarray(cv2.cvtColor(pixels, conversion))  # cvtColor writes a new array


def decode_compressed(fmt: str, data) -> np.ndarray:
    """sensor_msgs/CompressedImage fields -> (H, W, 3) uint8 RGB.

    The codec is read from the data itself, so ``fmt`` ('jpeg', 'png',
    'rgb8; jpeg compressed bgr8', ...) only names the image in errors. image_transport's
    compressed images hold true colours (the encoder converts colour images to bgr8
    first), so OpenCV's BGR result is simply swapped to RGB. Depth images
    ('compressedDepth') carry an extra header and are not decoded here.
    """
    buf = _as_bytes(data, 'compressed image')
    img = None
    if buf.size:
        try:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # (H, W, 3) BGR, or None
        except cv2.error:
            img = None
    if img is None:
        raise ImageError(f"could not decode {buf.size}-byte compressed image (format {fmt!r})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_rgb(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8; returns ``img`` itself if already that size.

    INTER_AREA when no side grows (it averages, so shrinking does not alias),
    INTER_LINEAR otherwise.
    """
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ImageError(f"expected an (H, W, 3) uint8 image, got shape {img.shape} {img.dtype}")
    if height <= 0 or width <= 0:
        raise ImageError(f"target size must be positive, got {height} x {width}")
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    interpolation = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interpolation)  # dsize is (width, height)

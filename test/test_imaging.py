"""Image decoding: every supported encoding, row padding, bad messages, compressed images, resizing.

The encoders here write synthetic images the way a camera driver would, so each test
is a round trip: RGB -> message fields -> decode_image -> RGB.
"""
import array
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dp_ros.imaging import SUPPORTED_ENCODINGS, ImageError, decode_compressed, decode_image, resize_rgb

H, W = 6, 8


def rgb_image(h=H, w=W, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def flat_image(rgb, h=H, w=W):
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


# --- synthetic encoders: (H, W, 3) RGB -> (H, W*bytes_per_pixel) uint8 rows --------------

def pack16(values, bigendian, seed=1):
    """8-bit values -> 16-bit samples whose high byte is the value (random low byte)."""
    low = np.random.default_rng(seed).integers(0, 256, values.shape, dtype=np.uint16)
    v16 = (values.astype(np.uint16) << 8) | low
    return v16.astype('>u2' if bigendian else '<u2').view(np.uint8)  # (..., N) -> (..., 2N)


def bayer_mosaic(img, pattern):
    """pattern such as 'rggb': the colours of the 2x2 tile, row by row."""
    index = {'r': 0, 'g': 1, 'b': 2}
    out = np.empty(img.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = img[dy::2, dx::2, index[colour]]
    return out


def yuv422(img, order):
    """BT.601 limited range (as OpenCV decodes it); chroma averaged over pixel pairs."""
    x = img.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    u = (u[:, 0::2] + u[:, 1::2]) / 2  # (H, W) -> (H, W/2)
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    y0, y1 = y[:, 0::2], y[:, 1::2]
    planes = (u, y0, v, y1) if order == 'uyvy' else (y0, u, y1, v)
    packed = np.stack(planes, axis=-1)  # (H, W/2, 4)
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8).reshape(img.shape[0], -1)


def encode(encoding, img, bigendian=False):
    """RGB image -> packed rows for ``encoding`` (no padding)."""
    h = img.shape[0]
    gray = img[..., 0]
    alpha = np.full(img.shape[:2] + (1,), 77, np.uint8)
    table = {
        'rgb8': lambda: img,
        'bgr8': lambda: img[..., ::-1],
        '8UC3': lambda: img[..., ::-1],
        'rgba8': lambda: np.concatenate([img, alpha], -1),
        'bgra8': lambda: np.concatenate([img[..., ::-1], alpha], -1),
        '8UC4': lambda: np.concatenate([img[..., ::-1], alpha], -1),
        'mono8': lambda: gray,
        '8UC1': lambda: gray,
        'mono16': lambda: pack16(gray, bigendian),
        '16UC1': lambda: pack16(gray, bigendian),
        'rgb16': lambda: pack16(img.reshape(h, -1), bigendian),
        'bgr16': lambda: pack16(img[..., ::-1].reshape(h, -1), bigendian),
        'bayer_rggb8': lambda: bayer_mosaic(img, 'rggb'),
        'bayer_bggr8': lambda: bayer_mosaic(img, 'bggr'),
        'bayer_gbrg8': lambda: bayer_mosaic(img, 'gbrg'),
        'bayer_grbg8': lambda: bayer_mosaic(img, 'grbg'),
        'yuv422': lambda: yuv422(img, 'uyvy'),
        'uyvy': lambda: yuv422(img, 'uyvy'),
        'yuv422_yuy2': lambda: yuv422(img, 'yuyv'),
        'yuyv': lambda: yuv422(img, 'yuyv'),
    }
    return np.ascontiguousarray(table[encoding]()).reshape(h, -1)


def fields(encoding, img, pad=0, bigendian=False, fill=0xAB):
    """-> (encoding, height, width, step, is_bigendian, data bytes) with ``pad`` bytes per row."""
    rows = encode(encoding, img, bigendian)
    padded = np.full((rows.shape[0], rows.shape[1] + pad), fill, np.uint8)
    padded[:, :rows.shape[1]] = rows
    return encoding, img.shape[0], img.shape[1], padded.shape[1], bigendian, padded.tobytes()


EXACT = ['rgb8', 'bgr8', '8UC3', 'rgba8', 'bgra8', '8UC4', 'rgb16', 'bgr16']
MONO = ['mono8', '8UC1', 'mono16', '16UC1']
BAYER = ['bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8']
YUV = ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv']


def test_every_supported_encoding_is_tested():
    assert sorted(EXACT + MONO + BAYER + YUV) == sorted(SUPPORTED_ENCODINGS)


# --- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('encoding', EXACT)
def test_colour_encodings_round_trip_exactly(encoding, bigendian):
    img = rgb_image()
    out = decode_image(*fields(encoding, img, bigendian=bigendian))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, img)


@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('encoding', MONO)
def test_mono_encodings_give_grey_rgb(encoding, bigendian):
    img = rgb_image()
    img[...] = img[..., :1]  # R = G = B
    out = decode_image(*fields(encoding, img, bigendian=bigendian))
    assert np.array_equal(out, img)


def test_16_bit_keeps_the_high_byte_in_the_stated_byte_order():
    # 0x1234 -> 0x12; the same bytes read in the other byte order give 0x34.
    le = np.array([0x1234], '<u2').tobytes()
    assert decode_image('mono16', 1, 1, 2, False, le)[0, 0, 0] == 0x12
    assert decode_image('mono16', 1, 1, 2, True, le)[0, 0, 0] == 0x34
    be = np.array([0xFF01, 0x0180], '>u2').tobytes()
    assert decode_image('16UC1', 1, 2, 4, True, be)[0, :, 0].tolist() == [0xFF, 0x01]


@pytest.mark.parametrize('encoding', BAYER)
@pytest.mark.parametrize('colour', [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 120, 40)])
def test_bayer_flat_colour_scenes_decode_to_that_colour(encoding, colour):
    # A pure-red scene in bayer_rggb8 lights only the top-left pixel of each 2x2 tile:
    # if the OpenCV pattern names were taken literally it would decode as blue.
    img = flat_image(colour)
    out = decode_image(*fields(encoding, img))
    assert np.abs(out.astype(int) - img).max() <= 10, out[H // 2, W // 2]


def test_bayer_rggb8_red_scene_is_red_not_blue():
    mosaic = np.zeros((4, 4), np.uint8)
    mosaic[0::2, 0::2] = 255  # R sites of an RGGB tile
    out = decode_image('bayer_rggb8', 4, 4, 4, False, mosaic.tobytes())
    assert out[..., 0].min() == 255 and out[..., 1:].max() == 0


@pytest.mark.parametrize('encoding', YUV)
@pytest.mark.parametrize('colour', [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 120, 40), (128, 128, 128)])
def test_yuv422_flat_colours_round_trip(encoding, colour):
    img = flat_image(colour)
    out = decode_image(*fields(encoding, img))
    assert np.abs(out.astype(int) - img).max() <= 10, out[0, 0]


@pytest.mark.parametrize('encoding', YUV)
def test_yuv422_byte_order_matters(encoding):
    # Reading UYVY bytes as YUYV (or the reverse) must not give the colour back.
    other = {'yuv422': 'yuyv', 'uyvy': 'yuyv', 'yuv422_yuy2': 'uyvy', 'yuyv': 'uyvy'}[encoding]
    img = flat_image((200, 40, 40))
    enc, h, w, step, big, data = fields(encoding, img)
    wrong = decode_image(other, h, w, step, big, data)
    assert np.abs(wrong.astype(int) - img).max() > 30


# --- row padding and buffer types --------------------------------------------------------

@pytest.mark.parametrize('encoding', ['rgb8', 'bgra8', 'mono8', 'mono16', 'bgr16', 'bayer_grbg8', 'yuv422'])
def test_row_padding_is_skipped(encoding):
    img = rgb_image() if encoding not in BAYER + YUV else flat_image((90, 160, 30))
    plain = decode_image(*fields(encoding, img))
    for pad in (1, 3, 64):
        assert np.array_equal(decode_image(*fields(encoding, img, pad=pad, fill=0xEE)), plain)


def test_trailing_bytes_after_the_last_row_are_ignored():
    img = rgb_image()
    enc, h, w, step, big, data = fields('rgb8', img)
    assert np.array_equal(decode_image(enc, h, w, step, big, data + b'\x00' * 17), img)


@pytest.mark.parametrize('wrap', [
    bytes, bytearray, memoryview,
    lambda b: array.array('B', b),  # what rclpy gives for uint8[] fields
    lambda b: np.frombuffer(b, np.uint8),
    lambda b: np.frombuffer(b, np.uint8).reshape(H, -1),  # any uint8 array is read flat
])
def test_bytes_like_inputs(wrap):
    img = rgb_image()
    enc, h, w, step, big, data = fields('bgr8', img, pad=4)
    assert np.array_equal(decode_image(enc, h, w, step, big, wrap(data)), img)


def test_result_is_a_copy_not_a_view_of_the_message_buffer():
    img = rgb_image()
    for encoding in ('rgb8', 'bgr8', 'mono8'):
        enc, h, w, step, big, data = fields(encoding, img)
        for buf in (bytearray(data), array.array('B', data), np.frombuffer(data, np.uint8).copy()):
            out = decode_image(enc, h, w, step, big, buf)
            assert out.flags.c_contiguous and out.flags.writeable
            assert not np.shares_memory(out, np.frombuffer(buf, np.uint8))
            expected = out.copy()
            out[...] = 0  # writing the result leaves the message alone
            assert bytes(buf) == data
            out = decode_image(enc, h, w, step, big, buf)
            np.frombuffer(buf, np.uint8)[:] = 0  # the middleware reuses its buffer: the result keeps its pixels
            assert np.array_equal(out, expected)


# --- bad messages -------------------------------------------------------------------------

def test_truncated_data_names_the_numbers():
    with pytest.raises(ImageError, match=r"image data has 921000 bytes; 480 rows x step 1920 needs 921600"):
        decode_image('rgb8', 480, 640, 1920, False, bytes(921000))


def test_step_shorter_than_a_row():
    with pytest.raises(ImageError, match=r"step 1900 is shorter than a row: 640 pixels x 3 bytes \(rgb8\) = 1920"):
        decode_image('rgb8', 480, 640, 1900, False, bytes(1920 * 480))
    with pytest.raises(ImageError, match=r"x 2 bytes \(mono16\) = 1280"):
        decode_image('mono16', 480, 640, 640, False, bytes(1280 * 480))


@pytest.mark.parametrize('h, w', [(0, 640), (480, 0), (-1, 4)])
def test_zero_or_negative_size(h, w):
    with pytest.raises(ImageError, match="image size must be positive"):
        decode_image('rgb8', h, w, 1920, False, bytes(1920 * 480))


def test_unknown_encoding_lists_the_supported_ones():
    with pytest.raises(ImageError, match="unsupported image encoding '32FC1'") as e:
        decode_image('32FC1', 2, 2, 16, False, bytes(64))
    for name in ('rgb8', 'bgr8', 'mono16', 'bayer_rggb8', 'yuv422', 'yuv422_yuy2'):
        assert name in str(e.value)


def test_yuv422_needs_an_even_width():
    with pytest.raises(ImageError, match="width must be even, got 3"):
        decode_image('yuv422', 2, 3, 6, False, bytes(12))


def test_data_that_is_not_bytes():
    with pytest.raises(ImageError, match="must be uint8, got a float32 array"):
        decode_image('mono8', 2, 2, 2, False, np.zeros(4, np.float32))
    with pytest.raises(ImageError, match="must be bytes-like, got list"):
        decode_image('mono8', 2, 2, 2, False, [0, 0, 0, 0])


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


# --- compressed images --------------------------------------------------------------------

def smooth_image(h=48, w=64):
    """Large flat blocks: JPEG keeps them within a few levels."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (220, 30, 30)
    img[:, w // 2:] = (30, 60, 220)
    return img


def compressed(img_rgb, ext):
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize('fmt', ['jpeg', 'rgb8; jpeg compressed bgr8'])
def test_jpeg_decodes_to_rgb(fmt):
    img = smooth_image()
    out = decode_compressed(fmt, array.array('B', compressed(img, '.jpg')))
    assert out.shape == img.shape and out.dtype == np.uint8
    # Away from the block edge the colours come back within a few levels (not swapped).
    assert np.abs(out[:, :24].astype(int) - img[:, :24]).max() <= 10
    assert np.abs(out[:, 40:].astype(int) - img[:, 40:]).max() <= 10


def test_png_decodes_exactly():
    img = rgb_image(31, 17)
    assert np.array_equal(decode_compressed('png', compressed(img, '.png')), img)
    assert np.array_equal(decode_compressed('bgr8; png compressed bgr8', memoryview(compressed(img, '.png'))), img)


def test_grey_png_becomes_three_channels():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    ok, buf = cv2.imencode('.png', grey)
    out = decode_compressed('mono8; png compressed ', buf)  # an ndarray buffer works too
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 1], grey)


@pytest.mark.parametrize('data', [b'', b'not an image at all' * 10, compressed(smooth_image(), '.jpg')[:20]])
def test_corrupt_or_empty_compressed_data(data):
    with pytest.raises(ImageError, match=rf"could not decode {len(data)}-byte compressed image \(format 'jpeg'\)"):
        decode_compressed('jpeg', data)


# --- resizing -----------------------------------------------------------------------------

def test_resize_shapes_and_dtype():
    img = rgb_image(48, 64)
    for h, w in [(24, 32), (96, 128), (30, 90), (1, 1)]:
        out = resize_rgb(img, h, w)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_resize_to_the_same_size_returns_the_input():
    img = rgb_image()
    assert resize_rgb(img, H, W) is img


def test_shrinking_averages_enlarging_interpolates():
    img = rgb_image(8, 8)
    half = resize_rgb(img, 4, 4)
    block_mean = img.reshape(4, 2, 4, 2, 3).astype(float).mean(axis=(1, 3))  # (8, 8, 3) -> (4, 4, 3)
    assert np.abs(half - block_mean).max() <= 0.5 + 1e-9  # INTER_AREA: the 2x2 mean, rounded
    assert np.array_equal(resize_rgb(img, 16, 16), cv2.resize(img, (16, 16), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(resize_rgb(img, 4, 16), cv2.resize(img, (16, 4), interpolation=cv2.INTER_LINEAR))


def test_resize_rejects_bad_input():
    with pytest.raises(ImageError, match=r"expected an \(H, W, 3\) uint8 image"):
        resize_rgb(np.zeros((4, 4), np.uint8), 2, 2)
    with pytest.raises(ImageError, match="uint8"):
        resize_rgb(np.zeros((4, 4, 3), np.float32), 2, 2)
    with pytest.raises(ImageError, match="target size must be positive"):
        resize_rgb(np.zeros((4, 4, 3), np.uint8), 0, 2)


def test_imaging_imports_no_ros():
    check = (
        "import sys; sys.modules['rclpy'] = None; import dp_ros.imaging; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'rosidl_runtime_py', 'torch')]; "
        "assert not [m for m in bad if sys.modules[m] is not None], bad"
    )
    subprocess.run([sys.executable, '-c', check], check=True)

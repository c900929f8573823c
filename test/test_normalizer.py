"""Min-max normalization: [-1, 1], round trips, constant dimensions, serialization."""
import json

import numpy as np
import pytest

from dp_ros.core.normalizer import MinMax, Normalizer


def test_maps_range_to_unit_interval_and_back():
    rng = np.random.default_rng(0)
    x = rng.uniform([-3, 0, 10], [5, 0.01, 20], size=(500, 3))
    n = Normalizer.fit({"action": x})
    y = n.normalize("action", x)
    assert np.allclose(y.min(axis=0), -1) and np.allclose(y.max(axis=0), 1)
    assert np.allclose(n.unnormalize("action", y), x, atol=1e-12)


def test_constant_dimension_is_safe():
    x = np.stack([np.linspace(0, 1, 10), np.full(10, 0.7)], axis=1)
    n = Normalizer.fit({"joint_pos": x})
    y = n.normalize("joint_pos", x)
    assert np.all(np.isfinite(y))
    assert np.allclose(y[:, 1], 0.0)
    assert np.allclose(n.unnormalize("joint_pos", y), x)
    # A value off the constant still maps back exactly.
    probe = np.array([[0.5, 0.9]])
    assert np.allclose(n.unnormalize("joint_pos", n.normalize("joint_pos", probe)), probe)


def test_leading_axes_are_pooled():
    x = np.arange(24, dtype=float).reshape(2, 3, 4)
    n = Normalizer.fit({"a": x})
    assert np.array_equal(n.stats["a"].min, x.reshape(-1, 4).min(0))


def test_serialization_roundtrip():
    n = Normalizer.fit({"action": np.random.default_rng(1).normal(size=(50, 4))})
    m = Normalizer.from_dict(json.loads(json.dumps(n.to_dict())))
    x = np.random.default_rng(2).normal(size=(7, 4))
    assert np.array_equal(n.normalize("action", x), m.normalize("action", x))


def test_errors():
    n = Normalizer.fit({"action": np.zeros((3, 2))})
    with pytest.raises(KeyError, match="no statistics for 'joint_pos'"):
        n.normalize("joint_pos", np.zeros((1, 2)))
    with pytest.raises(ValueError, match="has 3 dimensions; its statistics have 2"):
        n.normalize("action", np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        MinMax(np.array([0.0, np.nan]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="max < min"):
        MinMax(np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="no samples"):
        Normalizer.fit({"action": np.zeros((0, 2))})
    with pytest.raises(ValueError, match="exactly 'min' and 'max'"):
        Normalizer.from_dict({"action": {"min": [0]}})


def test_affine_entries_round_trip_and_invert():
    from dp_ros.core.normalizer import Affine

    norm = Normalizer({"action": Affine(np.array([2.0, -0.5]), np.array([-1.0, 0.25])),
                       "joint_pos": MinMax(np.array([0.0]), np.array([2.0]))})
    back = Normalizer.from_dict(norm.to_dict())
    assert isinstance(back.stats["action"], Affine) and isinstance(back.stats["joint_pos"], MinMax)
    x = np.array([[0.3, -4.0], [1.0, 2.0]])
    assert np.allclose(back.normalize("action", x), x * [2.0, -0.5] + [-1.0, 0.25])
    assert np.allclose(back.unnormalize("action", back.normalize("action", x)), x)
    # min and max: what maps to -1 and +1, in order even for a negative scale.
    a = back.stats["action"]
    assert np.allclose(a.min, [0.0, -1.5]) and np.allclose(a.max, [1.0, 2.5])
    with pytest.raises(ValueError, match="zero entry"):
        Affine(np.array([0.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="exactly 'min' and 'max', or exactly 'scale' and 'offset'"):
        Normalizer.from_dict({"action": {"scale": [1.0]}})

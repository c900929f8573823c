"""A stand-in for the ``tensorrt`` package, for testing the TensorRT backend without TensorRT.

It offers the part of the TensorRT 10 Python API that ``dp_ros.runtime.tensorrt_backend``
uses, with the same names and calling conventions, and runs the parsed ONNX graph
with ONNX Runtime on the CPU. Like a real engine, an execution context reads its
inputs from, and writes its outputs to, the raw addresses given by
``set_tensor_address``: the backend's bindings (names, shapes, dtypes, which buffer is
read when) are exercised for real. What it cannot show is anything about TensorRT
itself: its parser's coverage, its kernels, FP16 accuracy (FP16 builds only round
their outputs to float16), CUDA streams or graphs.

Install it with ``monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)``.
"""
from __future__ import annotations

import ctypes
import enum
import pickle

import numpy as np
import onnx
import onnxruntime as ort

__version__ = "10.0.0.stand-in"

# What the tests look at: one entry per engine build, and a switch to make builds fail.
builds: list[dict] = []
fail_builds = False


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = WARNING):
        self.min_severity = min_severity


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class BuilderFlag(enum.Enum):
    FP16 = 0


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


_FROM_ONNX = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF,
              onnx.TensorProto.UINT8: DataType.UINT8, onnx.TensorProto.INT32: DataType.INT32,
              onnx.TensorProto.INT64: DataType.INT64, onnx.TensorProto.BOOL: DataType.BOOL}
_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.UINT8: np.uint8,
          DataType.INT32: np.int32, DataType.INT64: np.int64, DataType.BOOL: np.bool_}


class _ParserError:
    def __init__(self, text: str):
        self._text = text

    def desc(self) -> str:
        return self._text

    def __str__(self) -> str:
        return self._text


class INetworkDefinition:
    def __init__(self):
        self.onnx: bytes | None = None


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger):
        self.network = network
        self._errors: list[_ParserError] = []

    def parse(self, model: bytes) -> bool:
        try:
            onnx.checker.check_model(onnx.load_from_string(model))
        except Exception as exc:  # noqa: BLE001 - a parser reports, it does not raise
            self._errors.append(_ParserError(f"not a valid ONNX model: {exc}"))
            return False
        self.network.onnx = bytes(model)
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> _ParserError:
        return self._errors[index]


class ITimingCache:
    def __init__(self, blob: bytes):
        self.entries = bytes(blob)

    def serialize(self) -> bytes:
        return self.entries


class IBuilderConfig:
    def __init__(self):
        self.flags: set[BuilderFlag] = set()
        self.pools: dict[MemoryPoolType, int] = {}
        self._cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        self.pools[MemoryPoolType(pool)] = int(pool_size)

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(BuilderFlag(flag))

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache


class Builder:
    def __init__(self, logger: Logger):
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
        if fail_builds or network.onnx is None:
            return None
        fp16 = BuilderFlag.FP16 in config.flags
        cache = config.get_timing_cache()
        builds.append({"fp16": fp16, "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
                       "timing_cache_in": cache.entries if cache else None})
        if cache is not None:
            cache.entries += b"tactic;"
        return pickle.dumps({"onnx": network.onnx, "fp16": fp16})


class _Tensor:
    def __init__(self, info: onnx.ValueInfoProto, mode: TensorIOMode):
        t = info.type.tensor_type
        self.name = info.name
        self.shape = tuple(d.dim_value for d in t.shape.dim)
        self.dtype = _FROM_ONNX[t.elem_type]
        self.mode = mode


class ICudaEngine:
    def __init__(self, onnx_bytes: bytes, fp16: bool):
        model = onnx.load_from_string(onnx_bytes)
        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.fp16 = fp16
        self.io = [_Tensor(i, TensorIOMode.INPUT) for i in model.graph.input]
        self.io += [_Tensor(o, TensorIOMode.OUTPUT) for o in model.graph.output]
        self._by_name = {t.name: t for t in self.io}

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, index: int) -> str:
        return self.io[index].name

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._by_name[name].shape

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._by_name[name].dtype

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        t = self._by_name.get(name)
        return t.mode if t else TensorIOMode.NONE

    def create_execution_context(self) -> "IExecutionContext":
        return IExecutionContext(self)


def _at(address: int, tensor: _Tensor) -> np.ndarray:
    """A writable numpy view of the memory at ``address`` (what TensorRT reads and writes)."""
    dtype = np.dtype(_NUMPY[tensor.dtype])
    n = int(np.prod(tensor.shape, dtype=np.int64)) * dtype.itemsize
    return np.frombuffer((ctypes.c_uint8 * n).from_address(address), dtype=dtype).reshape(tensor.shape)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        self.engine = engine
        self.addresses: dict[str, int] = {}
        self.enqueued = 0

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self.engine._by_name:
            return False
        self.addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        if any(t.name not in self.addresses for t in self.engine.io):
            return False  # TensorRT logs an error and returns False for an unbound tensor
        feeds = {t.name: _at(self.addresses[t.name], t).copy()
                 for t in self.engine.io if t.mode == TensorIOMode.INPUT}
        outputs = [t for t in self.engine.io if t.mode == TensorIOMode.OUTPUT]
        for t, value in zip(outputs, self.engine.session.run([t.name for t in outputs], feeds)):
            if self.engine.fp16:
                value = value.astype(np.float16).astype(value.dtype)
            _at(self.addresses[t.name], t)[...] = value
        self.enqueued += 1
        return True


class Runtime:
    def __init__(self, logger: Logger):
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        try:
            payload = pickle.loads(serialized_engine)
        except Exception:  # noqa: BLE001 - TensorRT returns None for an engine it cannot read
            return None
        return ICudaEngine(payload["onnx"], payload["fp16"])

"""The exported graphs behind one small interface, on ONNX Runtime or OpenVINO (whichever the folder was written for).

``Graphs.run(name, feeds)`` runs one graph (``speech_tower``, ``speech_projection``, ``text``) on numpy inputs and
returns its outputs in the format's order. ``precision``: ``auto`` (OpenVINO: bf16 where the CPU multiplies bf16
natively and the speech tower takes bf16, else fp32; ONNX Runtime: fp32), ``fp32``, ``bf16`` (OpenVINO's inference
precision hint) or ``int8`` (the int8 files the export wrote). A precision applies to the graphs the manifest lists it
for (the speech tower); the others run in fp32 (text embeddings are cached per string; the projection is small).
The precision a graph really runs in is read back from the runtime and reported.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..precisions import PRECISIONS  # noqa: F401 - the one declaration, re-exported


def _threads(threads: int | None) -> int:
    """Intra-op threads: as asked, else the CPUs this process may run on."""
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        return int(threads)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxGraphs:
    """ONNX Runtime sessions, one per graph (``session.run`` is thread-safe)."""

    name = "onnxruntime"

    def __init__(self, folder: Path, graphs: dict, precision: str, threads: int | None):
        import onnxruntime as ort

        if precision == "auto":
            precision = "fp32"
        if precision == "bf16":
            raise ValueError("ONNX Runtime exports run in fp32 or int8; bf16 needs an OpenVINO export "
                             "(paraspeechclap export MODEL --format openvino)")
        self.version = ort.__version__
        state = ort.capi.onnxruntime_pybind11_state  # what a failing run raises (none derive from RuntimeError)
        self.errors: tuple[type[BaseException], ...] = (RuntimeError, MemoryError, state.Fail, state.InvalidArgument,
                                                        state.RuntimeException, state.EPFail, state.EngineError)
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        self.sessions, self.precisions = {}, {}
        for graph, files in graphs.items():
            chosen = precision if precision in files else "fp32"
            if precision == "int8" and graph == "speech_tower" and "int8" not in files:
                raise ValueError("this export has no int8 speech tower (re-export with --variants fp32,int8)")
            self.sessions[graph] = ort.InferenceSession(str(folder / files[chosen]), options,
                                                        providers=["CPUExecutionProvider"])
            self.precisions[graph] = chosen

    def inputs(self, graph: str) -> list[str]:
        return [i.name for i in self.sessions[graph].get_inputs()]

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[graph].run(None, feeds)


class OpenVinoGraphs:
    """OpenVINO compiled models, one per graph, each behind a lock (an infer request serves one call at a time)."""

    name = "openvino"

    def __init__(self, folder: Path, graphs: dict, precision: str, threads: int | None, bf16_weights: bool = True):
        import openvino as ov

        core = ov.Core()
        self.version = ov.__version__
        self.errors = (RuntimeError, MemoryError)
        native = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if precision == "auto":
            precision = "bf16" if native and bf16_weights else "fp32"
        if precision == "bf16" and not native:
            raise ValueError("bf16 asked, but this CPU does not multiply bf16 natively (OpenVINO lists no BF16 "
                             "capability); use fp32")
        self.requests, self.locks, self.precisions, self._inputs = {}, {}, {}, {}
        for graph, files in graphs.items():
            chosen = precision if precision in files else "fp32"
            if precision == "int8" and graph == "speech_tower" and "int8" not in files:
                raise ValueError("this export has no int8 speech tower (re-export with --variants fp32,int8)")
            hint = "bf16" if chosen == "bf16" else "f32"
            compiled = core.compile_model(str(folder / files[chosen]), "CPU", {
                "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": _threads(threads),
                "PERFORMANCE_HINT": "LATENCY"})
            self.requests[graph] = compiled.create_infer_request()
            self.locks[graph] = threading.Lock()
            self._inputs[graph] = [port.get_any_name() for port in compiled.inputs]
            ran = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
            self.precisions[graph] = "bf16" if "bf16" in ran else chosen

    def inputs(self, graph: str) -> list[str]:
        return list(self._inputs[graph])

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.locks[graph]:
            request = self.requests[graph]
            request.infer(feeds)
            return [np.array(request.get_output_tensor(i).data) for i in range(len(request.model_outputs))]


def open_graphs(folder: Path, backend: str, graphs: dict, precision: str = "auto", threads: int | None = None,
                bf16_weights: bool = True):
    """The graphs of an exported folder on the runtime it was written for."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    try:
        if backend == "onnx":
            return OnnxGraphs(folder, graphs, precision, threads)
        return OpenVinoGraphs(folder, graphs, precision, threads, bf16_weights)
    except ImportError as err:
        package = "onnxruntime" if backend == "onnx" else "openvino"
        raise ImportError(f"{folder} is a {backend} export: install {package} (pip install {package})") from err


def graph_precisions(graphs) -> Sequence[str]:
    return sorted(set(graphs.precisions.values()))

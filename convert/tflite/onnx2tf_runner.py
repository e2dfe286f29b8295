"""ONNX → TFLite through onnx2tf, in a subprocess that is offline and out of the user's way.

onnx2tf writes into its working directory; it runs the ``onnxsim`` executable found on PATH; it prints hundreds of lines, and
TensorFlow adds native log noise to file descriptor 2; it may ``sys.exit`` on failure. So it runs
in a child process that:

* works in a private temporary directory, never in the user's current directory;
* has the Python environment's own ``bin`` first on PATH, so ``onnxsim`` is found even when the
  CLI was started by absolute path from a virtual environment that is not activated;
* refuses every network connection and name lookup, and fails the conversion if any was tried;
* writes onnx2tf's and TensorFlow's output to a log (moved out of the scratch folder on failure and
  named in the error), and reports progress to the parent on its own channel.

The child converts once with onnx2tf (to an in-memory Keras model), then writes one ``.tflite`` per
requested precision with :mod:`convert.tflite.quantize`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convert.errors import ArgumentError, ConvertError, RuntimeCrash
from convert.io.child import ChildFailure, NetworkBlocked, run_isolated
from convert.io.scratch import Scratch

LOG_NAME = "onnx2tf.log"
JOB_NAME = "job.json"
CALIB_NAME = "calibration_pixels.npy"
WORKDIR_PREFIX = "shvit-onnx2tf-"

Log = Callable[[str], None]


# ---------------------------------------------------------------- parent side


def tool_path(environ: Mapping[str, str] | None = None) -> str:
    """PATH with this interpreter's ``bin`` folder first (where pip put ``onnxsim``)."""
    environ = os.environ if environ is None else environ
    bin_dir = str(Path(sys.executable).parent)
    rest = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    return os.pathsep.join([bin_dir, *rest])


def convert_onnx(
    onnx_path: Path,
    outputs: Mapping[str, Path],
    *,
    scratch: Scratch,
    calib_pixels: np.ndarray | None = None,
    int8: dict[str, Any] | None = None,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, Any]:
    """Write ``outputs[precision]`` for every requested precision; returns timings and versions.

    ``calib_pixels`` (uint8 NHWC) are required for ``int8``.
    The child works in a folder of ``scratch`` and keeps its temporary files there.
    ``int8`` (:meth:`convert.int8.engine.Int8Options.as_dict`) says how ``int8`` is made;
    the result then holds its ``int8_report``.
    """
    if "int8" in outputs and (calib_pixels is None or not len(calib_pixels)):
        raise ArgumentError("int8 calibration needs images: give a folder of photos", argument="calib")
    with scratch.temporary(WORKDIR_PREFIX) as work:
        job: dict[str, Any] = {"onnx": str(Path(onnx_path).resolve()), "outputs": {p: str(Path(o).resolve()) for p, o in outputs.items()}}
        if calib_pixels is not None and "int8" in outputs:
            np.save(work / CALIB_NAME, np.ascontiguousarray(calib_pixels, dtype=np.uint8))
            job["calib"] = str(work / CALIB_NAME)
        if int8 is not None:
            job["int8"] = int8
        (work / JOB_NAME).write_text(json.dumps(job))
        return _run_child(
            work, list(outputs), scratch=scratch, calib_count=0 if calib_pixels is None else len(calib_pixels), progress=progress, log=log
        )


def _run_child(
    work: Path, precisions: Sequence[str], *, scratch: Scratch, calib_count: int, progress: bool, log: Log | None
) -> dict[str, Any]:
    from shvit.progress import progress_bar

    env = {"PATH": tool_path(), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **scratch.child_env()}
    steps = 1 + len(precisions) + (calib_count if "int8" in precisions else 0)
    bar = progress_bar(total=steps, desc="onnx2tf", unit="step", enabled=progress)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "stage":
            bar.set_description(event["name"])
            if log is not None and bar.disable:  # no bar (not a terminal): the stage as a line
                log(f"  {event['name']}")
        elif event["event"] == "step":
            bar.update(1)

    started = time.perf_counter()
    try:
        result: dict[str, Any] = run_isolated(
            "convert.tflite.onnx2tf_runner:convert_in_child",
            args={"job": work / JOB_NAME},
            env=env,
            cwd=work,
            log_path=work / LOG_NAME,
            timeout_s=None,
            on_event=on_event,
        )
    except ChildFailure as exc:
        if exc.signal_name is not None:
            kept = scratch.keep(work / LOG_NAME, prefix=WORKDIR_PREFIX)
            raise RuntimeCrash(f"onnx2tf crashed with {exc.signal_name}; its log: {kept}") from None
        if exc.argument:
            raise ArgumentError(exc.message, argument=exc.argument) from None
        detail = (exc.message if exc.kind == Onnx2tfFailed.__name__ else exc.error) or _last_error(work / LOG_NAME)
        kept = scratch.keep(work / LOG_NAME, prefix=WORKDIR_PREFIX)
        raise ConvertError(f"TFLite conversion failed: {detail or exc.describe('onnx2tf', '')} (full log: {kept})") from None
    finally:
        bar.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _last_error(log_path: Path) -> str:
    """The most telling line of onnx2tf's log: its last ERROR line, else the last exception line."""
    if not log_path.exists():
        return ""
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    lines = [_strip_ansi(ln) for ln in lines]
    for line in reversed(lines):
        if line.startswith("ERROR:") and len(line) > len("ERROR:") + 3:
            return line[:300]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0]:
            return line[:300]
    return ""


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# ----------------------------------------------------------------- child side


class Onnx2tfFailed(RuntimeError):
    """The conversion failed in the child; the message is the telling line, as the user reads it."""


def convert_in_child(*, job: str, emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """In the child (offline, in the work folder, output going to the log): the whole conversion."""
    try:
        return _convert(json.loads(Path(job).read_text()), emit)
    except SystemExit as exc:  # onnx2tf exits on some conversion errors after logging them
        sys.stdout.flush()
        sys.stderr.flush()
        raise Onnx2tfFailed(_last_error(Path(LOG_NAME)) or f"onnx2tf exited ({exc.code})") from None
    except NetworkBlocked as exc:
        raise Onnx2tfFailed(f"onnx2tf tried to reach the network ({exc})") from None


def _convert(job: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    emit({"event": "stage", "name": "onnx2tf: ONNX → TensorFlow"})
    onnxsim = shutil.which("onnxsim")
    if onnxsim is None:  # onnx2tf would skip simplification silently, then fail obscurely on big variants
        raise RuntimeError(
            f"the onnxsim executable is not installed next to {sys.executable}: reinstall shvit-mobile (pip install onnxsim)"
        )
    import onnx2tf

    from convert.tflite import quantize

    started = time.perf_counter()
    model = onnx2tf.convert(
        input_onnx_file_path=job["onnx"],
        output_folder_path=str(Path.cwd() / "saved_model"),
        output_signaturedefs=True,  # op names onnx2tf can save; its default naming fails on SHViT
        tflite_backend="tf_converter",  # a Keras model: our graph rewrites and the int8 calibrator need it
        disable_model_save=True,  # the Keras model is converted below, in memory
        non_verbose=True,
    )
    function = quantize.concrete_function(model)
    timings = {"onnx2tf": round(time.perf_counter() - started, 1)}
    emit({"event": "step"})
    calib = np.load(job["calib"]) if job.get("calib") else None

    def on_image(done: int, total: int) -> None:
        emit({"event": "step"})

    float_model = None  # reused by int8-weights, which restores some float weights from it
    extra: dict[str, Any] = {}
    for precision in sorted(job["outputs"], key=lambda p: p != "fp32"):
        stage = f"calibrating int8 on {len(calib)} images" if precision == "int8" and calib is not None else f"TFLite {precision}"
        emit({"event": "stage", "name": stage})
        started = time.perf_counter()
        if precision == "int8" and calib is not None:
            data, report = _mixed_int8(function, calib, job["int8"], float_model=float_model, on_image=on_image)
            extra["int8_report"] = report
        else:
            data = quantize.convert(function, precision, calib_pixels=calib, on_image=on_image, float_model=float_model)
        if precision == "fp32":
            float_model = data
        Path(job["outputs"][precision]).write_bytes(data)
        timings[precision] = round(time.perf_counter() - started, 1)
        emit({"event": "step"})
    return {"timings_s": timings, "onnx2tf_version": onnx2tf.__version__, "onnxsim": onnxsim, **extra}


def _mixed_int8(
    function: Any, calib: np.ndarray, options: dict[str, Any], *, float_model: bytes | None, on_image: Any
) -> tuple[bytes, dict[str, Any]]:
    """Accuracy-aware int8 (:mod:`convert.tflite.int8_mixed`), float islands with int8 weights."""
    from convert.int8.engine import Int8Options
    from convert.tflite import int8_mixed, quantize

    hybrid = quantize.convert(function, "int8-weights", float_model=float_model)
    data, report = int8_mixed.convert_int8(function, calib, options=Int8Options.from_dict(options), hybrid=hybrid, on_image=on_image)
    return data, report.as_dict()

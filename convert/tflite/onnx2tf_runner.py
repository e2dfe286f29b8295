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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convert.errors import ArgumentError, ConvertError, RuntimeCrash
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
        raise ArgumentError("int8 calibration needs images: pass {calib=DIR} (a folder of photos)", argument="calib")
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

    env = dict(os.environ, PATH=tool_path(), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1", **scratch.child_env())
    steps = 1 + len(precisions) + (calib_count if "int8" in precisions else 0)
    bar = progress_bar(total=steps, desc="onnx2tf", unit="step", enabled=progress)
    started = time.perf_counter()
    result: dict[str, Any] = {}
    error, argument = "", None
    with open(work / LOG_NAME, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convert.tflite.onnx2tf_runner", str(work / JOB_NAME)],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            for line in proc.stdout or ():
                event = _event(line)
                kind = event.get("event")
                if kind == "stage":
                    bar.set_description(event["name"])
                    if log is not None and bar.disable:  # no bar (not a terminal): the stage as a line
                        log(f"  {event['name']}")
                elif kind == "step":
                    bar.update(1)
                elif kind == "error":
                    error, argument = event["message"], event.get("argument")
                elif kind == "done":
                    result = event["result"]
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            bar.close()
    if proc.returncode < 0:
        kept = scratch.keep(work / LOG_NAME, prefix=WORKDIR_PREFIX)
        raise RuntimeCrash(f"onnx2tf crashed with {signal.Signals(-proc.returncode).name}; its log: {kept}")
    if argument:
        raise ArgumentError(error, argument=argument)
    if proc.returncode != 0 or not result:
        detail = error or _last_error(work / LOG_NAME) or f"exited with code {proc.returncode}"
        kept = scratch.keep(work / LOG_NAME, prefix=WORKDIR_PREFIX)
        raise ConvertError(f"TFLite conversion failed: {detail} (full log: {kept})")
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _event(line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


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


class NetworkBlocked(OSError):
    """Raised for every connection or name lookup in the conversion child."""


def block_network(attempts: list[str]) -> None:
    """Make every internet access in this (child) process fail, and record it in ``attempts``.

    An audit hook (PEP 578) sees every connect and name lookup before it happens, whichever library
    makes it, and patches nothing; it lasts as long as the process, which exists for this conversion.
    """

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            what = f"name lookup {args[0]!r}"
        elif event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
            what = f"connect {args[1]!r}"
        else:
            return
        attempts.append(what)
        raise NetworkBlocked(f"network access blocked during conversion ({what})")

    sys.addaudithook(audit)


class _Channel:
    """Progress events to the parent, on the original stdout (fd 1 itself goes to the log)."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # onnx2tf's prints join TensorFlow's stderr in the log

    def send(self, event: str, **fields: Any) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()


def _child(job_path: str) -> int:
    channel = _Channel()
    attempts: list[str] = []
    block_network(attempts)
    try:
        result = _convert(json.loads(Path(job_path).read_text()), channel)
    except SystemExit as exc:  # onnx2tf exits on some conversion errors after logging them
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send("error", message=_last_error(Path(LOG_NAME)) or f"onnx2tf exited ({exc.code})")
        return 1
    except ArgumentError as exc:  # a bad option value, found once the graph's names are known
        channel.send("error", message=exc.template, argument=exc.argument)
        return 1
    except Exception as exc:  # reported to the parent as one line; the traceback goes to the log
        import traceback

        traceback.print_exc()
        if attempts:
            message = f"onnx2tf tried to reach the network ({attempts[0]})"
        else:
            first_line = (str(exc).strip().splitlines() or [""])[0]
            message = f"{type(exc).__name__}: {first_line}"
        channel.send("error", message=message)
        return 1
    if attempts:
        channel.send("error", message=f"the conversion tried to reach the network ({attempts[0]}); it must run offline")
        return 1
    channel.send("done", result=result)
    return 0


def _convert(job: dict[str, Any], channel: _Channel) -> dict[str, Any]:
    channel.send("stage", name="onnx2tf: ONNX → TensorFlow")
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
    channel.send("step")
    calib = np.load(job["calib"]) if job.get("calib") else None

    def on_image(done: int, total: int) -> None:
        channel.send("step")

    float_model = None  # reused by int8-weights, which restores some float weights from it
    extra: dict[str, Any] = {}
    for precision in sorted(job["outputs"], key=lambda p: p != "fp32"):
        channel.send(
            "stage", name=f"calibrating int8 on {len(calib)} images" if precision == "int8" and calib is not None else f"TFLite {precision}"
        )
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
        channel.send("step")
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


if __name__ == "__main__":
    from convert.io.scratch import exit_with_parent

    exit_with_parent()
    sys.exit(_child(sys.argv[1]))

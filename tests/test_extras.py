"""One install extra per target: a target whose toolchain is missing says which `pip install` adds it,
from the installed command and from Python, before any work; `--help` still lists it.

The missing toolchain is simulated in a child interpreter whose import system refuses the extra's
modules (a `sitecustomize` on PYTHONPATH), as if only `[coreml]` were installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convert import targets

BIN = Path(sys.executable).parent


def _without(tmp_path: Path, *modules: str) -> dict[str, str]:
    """An environment in which ``modules`` cannot be imported nor found."""
    site = tmp_path / "hide"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(f"""
        import sys
        HIDDEN = {set(modules)!r}
        class HideExtra:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in HIDDEN:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None
        sys.meta_path.insert(0, HideExtra())
    """)
    )
    return {**os.environ, "PYTHONPATH": str(site)}


@pytest.mark.parametrize("name", ["tflite", "coreai", "coreml"])
def test_convert_without_the_targets_extra_names_the_install_command(name: str, tmp_path: Path) -> None:
    env = _without(tmp_path, *targets.BUILTIN[name].needs)
    out = tmp_path / "exports"
    proc = subprocess.run(
        [str(BIN / "shvit-convert"), "--variant", "s1", "--target", name, "--random-init", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"pip install 'shvit-mobile[{name}]'" in lines[0] and f"the {name} target needs" in lines[0]
    assert not out.exists(), "nothing may be written when the toolchain is missing"


def test_help_still_lists_a_target_whose_extra_is_missing(tmp_path: Path) -> None:
    env = _without(tmp_path, *targets.BUILTIN["tflite"].needs)
    proc = subprocess.run([str(BIN / "shvit-convert"), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split()).replace("- ", "-")  # click wraps lines after hyphens
    assert "tflite: NHWC model for Android" in text and "(not installed: pip install 'shvit-mobile[tflite]')" in text
    assert "coreml: .mlpackage classifier" in text and "shvit-mobile[coreml]" not in text


def test_python_api_raises_missing_package_before_any_work(tmp_path: Path) -> None:
    env = _without(tmp_path, *targets.BUILTIN["tflite"].needs)
    script = textwrap.dedent(f"""
        import convert
        from convert.errors import MissingPackage
        try:
            convert.export("s1", target="tflite", weights=None, out_dir={str(tmp_path / "out")!r})
        except MissingPackage as exc:
            print("MissingPackage:", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert "MissingPackage: the tflite target needs onnx2tf" in proc.stdout, proc.stdout + proc.stderr
    assert "pip install 'shvit-mobile[tflite]'" in proc.stdout
    assert not (tmp_path / "out").exists()


def test_check_of_an_artifact_without_its_runtime_names_the_install_command(tmp_path: Path) -> None:
    artifact = tmp_path / "model.tflite"
    artifact.write_bytes(b"TFL3 not really")
    env = _without(tmp_path, *targets.BUILTIN["tflite"].needs)
    proc = subprocess.run(
        [str(BIN / "shvit-check"), str(artifact), "--variant", "s1", "--weights", str(tmp_path / "never-read.pth")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "pip install 'shvit-mobile[tflite]'" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_every_builtin_target_with_a_toolchain_names_an_extra_of_the_project() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for name, builtin in targets.BUILTIN.items():
        assert (builtin.extra is None) == (not builtin.needs), name
        if builtin.extra:
            assert builtin.extra in extras, f"{name}: extra [{builtin.extra}] is not in pyproject.toml"
            assert f"shvit-mobile[{builtin.extra}]" in extras["all"][0] or builtin.extra in extras["all"][0]

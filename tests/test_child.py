"""The one way the toolkit runs work in a child process (:mod:`convert.io.child`): exact results, one-line
failures (an error, a native abort, a hang), served objects, progress events, no network, and no child left
behind when the parent is interrupted."""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest

from convert.io.child import Child, ChildFailure, run_isolated


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_arrays_go_in_and_come_back_exactly() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    got = run_isolated("child_work:brightness", args={"pixels": pixels, "label": "cats"})
    assert got["label"] == "cats" and got["dtype"] == "uint8"
    assert got["per_image"].dtype == np.float32
    np.testing.assert_array_equal(got["per_image"], pixels.reshape(3, -1).mean(1, dtype=np.float64).astype(np.float32))


def test_an_error_in_the_child_comes_back_typed_with_its_argument() -> None:
    with pytest.raises(ChildFailure) as caught:
        run_isolated("child_work:refuse_argument", args={"value": "photos/"})
    assert caught.value.kind == "ArgumentError" and caught.value.argument == "calib"
    assert caught.value.message == "{calib=photos/} holds no images"  # placeholders kept for the CLI to spell


def test_a_native_abort_is_a_failure_naming_the_signal() -> None:
    with pytest.raises(ChildFailure) as caught:
        run_isolated("child_work:abort")
    assert caught.value.signal_name == "SIGABRT"
    assert caught.value.describe("the runtime", "while running the model") == "the runtime crashed with SIGABRT while running the model"


def test_a_hang_is_cut_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(ChildFailure) as caught:
        run_isolated("child_work:hang", timeout_s=3)
    assert time.monotonic() - started < 30
    assert caught.value.describe("the runtime", "") == "the runtime did not finish within 3 s"


def test_a_served_object_keeps_its_state_between_calls() -> None:
    with Child("child_work:Counter", args={"start": 10}, serve=True) as child:
        assert child.result() is None
        assert child.call("add", amount=5) == 15
        assert child.call("add", amount=1) == 16
    assert child.proc.poll() is not None


def test_progress_events_arrive_in_order_before_the_result() -> None:
    seen: list[int] = []
    assert run_isolated("child_work:count_steps", args={"steps": 4}, on_event=lambda e: seen.append(e["done"])) == 4
    assert seen == [1, 2, 3, 4]


def test_the_child_refuses_the_network_even_when_the_library_swallows_the_refusal() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(ChildFailure) as caught:
            run_isolated("child_work:connect", args={"port": port})
        assert caught.value.kind == "NetworkBlocked" and "127.0.0.1" in caught.value.message
        assert run_isolated("child_work:connect", args={"port": port}, offline=False) == "connected"


def test_an_interrupted_parent_leaves_no_child_behind() -> None:
    pids: list[int] = []

    def interrupt(event: dict) -> None:
        pids.append(event["pid"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_isolated("child_work:report_pid", on_event=interrupt)
    assert pids and _gone(pids[0])

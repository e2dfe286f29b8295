"""Issue 14, items 2 and 3: the generated Android and iOS apps hold the fixes, checked on the code's
syntax trees (tree-sitter) rather than on its text wherever the order or placement of calls is
what matters.

Android: late camera frames are no-ops and teardown is ordered; photos are decoded at a bounded
size; a photo picked while busy waits and the UI says so; edge-to-edge with insets; an
antialiased downscale; the compilerOptions DSL and a Gradle wrapper pinned to what AGP needs.
iOS: Xcode 15.3 stated and enforced; orientations consistent with the device family; camera
frames rotated to the way the phone is held.

The projects are generated from small hand-made models: the code checked here does not depend on
the model beyond ModelSpec / ModelInfo, which tests/test_mobile_demo.py checks on real exports.
"""

from __future__ import annotations

import plistlib
import re
from pathlib import Path

import pytest
import yaml
from demo_helpers import (
    ANDROID_SOURCES,
    KOTLIN,
    SWIFT,
    kotlin_constants,
    nodes,
    syntax_problems,
)
from helpers import tiny_traced_classifier
from tree_sitter import Node, Parser

from mobile_demo import generate_demo
from mobile_demo.android import AGP_VERSION, GRADLE_VERSION, MIN_GRADLE_FOR_AGP

PORTRAIT = "UIInterfaceOrientationPortrait"
ALL_ORIENTATIONS = frozenset(
    {
        PORTRAIT,
        "UIInterfaceOrientationPortraitUpsideDown",
        "UIInterfaceOrientationLandscapeLeft",
        "UIInterfaceOrientationLandscapeRight",
    }
)


@pytest.fixture(scope="module")
def android_app(tiny_tflites: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(tiny_tflites["quantized"], tmp_path_factory.mktemp("android-fixes") / "app")


@pytest.fixture(scope="module")
def ios_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """From a tiny image classifier: all the iOS generator reads is the interface."""
    from convert.coreml.ctimport import import_coremltools

    ct = import_coremltools()
    root = tmp_path_factory.mktemp("ios-fixes")
    traced, example = tiny_traced_classifier()
    model = ct.convert(
        traced,
        inputs=[ct.ImageType(name="image", shape=example.shape)],
        classifier_config=ct.ClassifierConfig(["a", "b", "c"]),
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
    )
    package = root / "tiny_classifier.mlpackage"
    model.save(str(package))
    return generate_demo(package, root / "app")


# --- syntax-tree helpers ------------------------------------------------------------------------------


def _parse(parser: Parser, path: Path) -> Node:
    """The file's syntax tree; the file must parse without ERROR or MISSING nodes."""
    problems = syntax_problems(parser, path)
    assert not problems, problems
    return parser.parse(path.read_bytes()).root_node


def _text(node: Node) -> str:
    return node.text.decode()


def _name(node: Node) -> str | None:
    named = node.child_by_field_name("name")
    if named is not None:
        return _text(named)
    return next((_text(c) for c in node.children if c.type in ("identifier", "simple_identifier")), None)


def _function(root: Node, name: str) -> Node:
    found = [f for f in nodes(root, "function_declaration") if _name(f) == name]
    assert len(found) == 1, f"expected one function {name}, found {len(found)}"
    return found[0]


def _callee_node(call: Node) -> Node:
    """The called name's node: `f` in f(…), `g` in a.b.g(…) and a?.g {…}, for Kotlin and Swift."""
    head = call.children[0]
    if head.type == "call_expression":  # f(x) { … }: the trailing lambda wraps the inner call
        return _callee_node(head)
    if head.type == "navigation_expression":
        return [c for c in head.children if c.is_named][-1]
    return head


def _callee(call: Node) -> str:
    return _text(_callee_node(call)).lstrip(".")


def _calls(node: Node, name: str | None = None) -> list[Node]:
    """Calls under ``node`` in the order their names appear (a.f().g() is f, g), optionally only ``name``.
    f(x) { … } is one call: the inner f(x) that its trailing lambda wraps is not listed again."""
    calls = [
        c
        for c in nodes(node, "call_expression")
        if not (c.parent is not None and c.parent.type == "call_expression" and c.parent.children[0] == c)
    ]
    calls.sort(key=lambda c: _callee_node(c).start_byte)
    return [c for c in calls if name is None or _callee(c) == name]


def _call_names(node: Node) -> list[str]:
    return [_callee(c) for c in _calls(node)]


def _property(root: Node, name: str) -> Node:
    found = [
        d
        for d in nodes(root, "property_declaration")
        if any(_name(v) == name for v in d.children if v.type in ("variable_declaration", "pattern"))
    ]
    assert len(found) == 1, f"expected one property {name}, found {len(found)}"
    return found[0]


def _lambda(call: Node) -> Node:
    """A Kotlin call's trailing lambda, or its one lambda argument."""
    lambdas = [c for c in call.children if c.type == "annotated_lambda"] or [
        a for a in nodes(call.child_by_field_name("value_arguments") or call, "lambda_literal")
    ]
    assert lambdas, f"{_text(call)[:60]!r} takes no lambda"
    return lambdas[0] if lambdas[0].type == "lambda_literal" else next(nodes(lambdas[0], "lambda_literal"))


def _condition(node: Node) -> str:
    """The condition of a Kotlin if or while, as written."""
    return _text(next(c for c in node.children if c.is_named))


def _inside(node: Node, ancestor: Node) -> bool:
    return ancestor.start_byte <= node.start_byte and node.end_byte <= ancestor.end_byte


def _kotlin(project: Path, name: str) -> Node:
    return _parse(KOTLIN, project / ANDROID_SOURCES / f"{name}.kt")


def _all_kotlin(project: Path) -> dict[str, Node]:
    return {p.name: _parse(KOTLIN, p) for p in sorted(project.rglob("*.kt")) + sorted(project.rglob("*.kts"))}


# --- Android 2(a): no crash on exit -------------------------------------------------------------------


def test_android_camera_teardown_is_ordered_and_late_frames_are_dropped(android_app: Path) -> None:
    pane = _kotlin(android_app, "CameraPane")
    [dispose] = _calls(pane, "onDispose")
    teardown = [n for n in _call_names(_lambda(dispose)) if n in ("set", "clearAnalyzer", "unbindAll", "shutdown", "awaitTermination")]
    assert teardown == ["set", "clearAnalyzer", "unbindAll", "shutdown", "awaitTermination"], teardown
    assert _text(_calls(_lambda(dispose), "set")[0]) == "closed.set(true)"

    [set_analyzer] = _calls(pane, "setAnalyzer")
    analyzer = _lambda(set_analyzer)
    body = [c for c in analyzer.children if c.is_named and c.type != "lambda_parameters"]
    assert len(body) == 1 and body[0].type == "call_expression" and _callee(body[0]) == "use", (
        "the whole analyzer runs inside ImageProxy.use, so every frame is closed"
    )
    [guard] = list(nodes(body[0], "if_expression"))
    assert _condition(guard) == "!closed.get()"
    [sink] = _calls(analyzer, "frameSink")
    assert _inside(sink, guard), "frames reach the controller only while the pane is open"

    [listener] = _calls(pane, "addListener")
    first = next(c for c in _lambda(listener).children if c.type == "if_expression")
    assert _condition(first) == "closed.get()" and "return@addListener" in _text(first)
    bind = _calls(_lambda(listener), "bindToLifecycle")[0]
    assert first.end_byte < bind.start_byte, "a pane disposed before the provider was ready binds no camera"


def test_android_controller_ignores_work_after_close(android_app: Path) -> None:
    controller = _kotlin(android_app, "DemoController")
    submit = _function(controller, "submit")
    block = next(nodes(submit, "block"))
    first, second = [c for c in block.children if c.is_named][:2]
    assert first.type == "if_expression" and _condition(first) == "closed.get()" and "return false" in _text(first)
    [attempt] = list(nodes(second, "try_expression"))
    [execute] = _calls(attempt, "execute")
    [catch] = list(nodes(attempt, "catch_block"))
    assert not _inside(execute, catch) and "RejectedExecutionException" in _text(catch)
    assert "throw" not in _text(catch), "a task refused after close is dropped, not rethrown"

    executes = _calls(controller, "execute")
    close = _function(controller, "close")
    assert all(_inside(e, submit) or _inside(e, close) for e in executes), "every other task goes through submit()"
    [claim] = _calls(close, "compareAndSet")
    assert "closed" in _text(claim) and all(claim.end_byte < e.start_byte for e in executes if _inside(e, close))

    frame = _function(controller, "classifyFrame")
    assert _calls(frame, "submit") and not _calls(frame, "execute")
    assert "frameInFlight.set(false)" in _text(next(nodes(frame, "finally_block"))), "a failed frame frees the slot"

    screen = _kotlin(android_app, "MainActivity")
    [dispose] = _calls(screen, "onDispose")
    assert "close" in _call_names(_lambda(dispose))


# --- Android 2(b): photos decoded at a bounded size ---------------------------------------------------


def test_android_photos_are_decoded_at_a_target_size_off_the_main_thread(android_app: Path) -> None:
    code = _all_kotlin(android_app)
    decodes = [(name, call) for name, root in code.items() for call in _calls(root, "decodeBitmap")]
    assert [name for name, _ in decodes] == ["Images.kt"], "one decode path, the bounded one"
    _, decode = decodes[0]
    assert [_text(a) for a in nodes(decode, "value_argument")] == ["source", "atTargetSize"]

    images = code["Images.kt"]
    [listener] = [c for c in _calls(images, "OnHeaderDecodedListener") if "ImageDecoder" in _text(c.children[0])]
    header = _lambda(listener)
    assert [_text(p) for p in nodes(header, "variable_declaration")][:2] == ["decoder", "info"]
    [size] = _calls(header, "photoTargetSize")
    assert _text(size.children[-1]) == "(info.size.width, info.size.height)", "the size comes from the header"
    [target] = _calls(header, "setTargetSize")
    assert _text(target.children[0]) == "decoder.setTargetSize" and size.end_byte < target.start_byte
    for root in code.values():  # no other way in: BitmapFactory or MediaStore would decode at full size
        names = {_text(i) for i in nodes(root, "identifier")}
        assert not names & {"BitmapFactory", "decodeStream", "decodeFile", "getBitmap"}

    constants = kotlin_constants(android_app / ANDROID_SOURCES / "Images.kt")
    display, most = constants["DISPLAY_SIDE"], constants["MAX_SIDE"]
    assert display * display * 4 <= 16 * 2**20, "the usual photo stays a bitmap of 16 MB or less"
    assert display <= most <= 4096 and most * most * 4 < 100_000_000, "under the GPU texture size and Canvas's 100 MB"
    uses = {_text(i) for i in nodes(_property(images, "MIN_SHORT_SIDE"), "identifier")}
    assert {"INPUT_WIDTH", "INPUT_HEIGHT", "CROP_FRACTION"} <= uses, "the minimum follows the model input, not a guess"
    assert 2 * 224 / 0.875 < display, "for a 224 × 224 model the minimum leaves room below the display side"

    controller = code["DemoController.kt"]
    [decode_call] = _calls(controller, "decodePhoto")
    offloaded = [s for s in _calls(controller, "submit") if _inside(decode_call, s)]
    assert offloaded and _text(offloaded[0]).startswith("submit(photoDecoder)"), "decoded off the main thread"
    activity = code["MainActivity.kt"]
    assert "ImageDecoder" not in {_text(i) for i in nodes(activity, "identifier")}
    [picked] = _calls(activity, "pickPhoto")
    assert _text(picked) == "controller.pickPhoto(uri)"


# --- Android 2(c): photos are never dropped -----------------------------------------------------------


def test_android_photo_picked_while_busy_or_loading_waits_and_the_ui_says_so(android_app: Path) -> None:
    controller = _kotlin(android_app, "DemoController")
    assert _calls(_property(controller, "pendingPhoto"), "AtomicReference")

    classify_photo = _function(controller, "classifyPhoto")
    names = _call_names(classify_photo)
    assert names.index("set") < names.index("submit") and "showProgress" in names
    assert "frameInFlight" not in _text(classify_photo), "photos never wait on the frame slot: they queue"
    assert "pendingPhoto.set(bitmap)" in {_text(c) for c in _calls(classify_photo, "set")}, "the newest photo replaces the older one"

    drain = _function(controller, "classifyPendingPhoto")
    block = [c for c in next(nodes(drain, "block")).children if c.is_named]
    assert "runner ?: return" in _text(block[0]) and "getAndSet(null)" in _text(block[1]), "without a loaded model the photo stays pending"
    stale = [i for i in nodes(drain, "if_expression") if _condition(i) == "photo !== bitmap"]
    assert stale and "return@post" in _text(stale[0]), "a superseded photo's result is not shown"

    select = _function(controller, "select")
    [load_task] = _calls(select, "submit")
    load_calls = _call_names(_lambda(load_task))
    assert load_calls.index("create") < load_calls.index("classifyPendingPhoto"), "retried once the model is loaded"
    assert "pendingPhoto.compareAndSet(null, shown)" in _text(select), "a backend switch classifies the shown photo again"

    frame_guard = next(c for c in next(nodes(_function(controller, "classifyFrame"), "block")).children if c.is_named)
    assert frame_guard.type == "if_expression" and _condition(frame_guard).startswith("pendingPhoto.get() != null ||")

    progress = _function(controller, "showProgress")
    assert {_text(a) for a in nodes(progress, "assignment")} >= {"progress = message", "predictions = emptyList()", "lastMillis = null"}
    assert "showProgress" in _call_names(_function(controller, "pickPhoto"))

    screen = _function(_kotlin(android_app, "MainActivity"), "DemoScreen")
    [branch] = [i for i in nodes(screen, "if_expression") if _condition(i) == "progress != null"]
    then_part, else_part = [c for c in branch.children if c.type in ("block", "control_structure_body")][:2]
    assert "predictions" not in _text(then_part) and "Text(progress)" in _text(then_part)
    assert _calls(else_part, "forEach") and "controller.predictions" in _text(_calls(else_part, "forEach")[0])


# --- Android 2(d): edge to edge -----------------------------------------------------------------------


def test_android_draws_edge_to_edge_inside_the_safe_insets(android_app: Path) -> None:
    activity = _kotlin(android_app, "MainActivity")
    assert "androidx.activity.enableEdgeToEdge" in {_text(q) for q in nodes(activity, "qualified_identifier")}
    names = _call_names(_function(activity, "onCreate"))
    assert names.index("enableEdgeToEdge") < names.index("setContent")

    screen = _function(activity, "DemoScreen")
    column = next(c for c in _calls(screen, "Column") if "verticalScroll" in _text(c))
    chain = [_callee(c) for c in _calls(column) if _callee(c) in ("fillMaxSize", "safeDrawingPadding", "verticalScroll", "padding")]
    assert chain.index("safeDrawingPadding") < chain.index("verticalScroll"), chain
    gradle = (android_app / "app/build.gradle.kts").read_text()
    version = re.search(r'"androidx\.activity:activity-compose:(\d+)\.(\d+)', gradle)
    assert version and (int(version[1]), int(version[2])) >= (1, 8), "enableEdgeToEdge is in androidx.activity 1.8+"


# --- Android 2(e): antialiased downscale --------------------------------------------------------------


def test_android_preprocessing_downscales_in_filtered_halvings(android_app: Path) -> None:
    code = _all_kotlin(android_app)
    preprocess = _function(code["ModelRunner.kt"], "preprocess")
    assert _calls(preprocess, "downscale") and not _calls(preprocess, "createScaledBitmap")

    downscale = _function(code["Images.kt"], "downscale")
    scaled = [(name, c) for name, root in code.items() for c in _calls(root, "createScaledBitmap")]
    assert scaled and all(name == "Images.kt" and _inside(c, downscale) for name, c in scaled), "one resize path"
    assert all(_text(c).rstrip(")").endswith("true") for _, c in scaled), "every scale filters"
    [loop] = list(nodes(downscale, "while_statement"))
    assert _condition(loop) == "current.width >= 2 * width && current.height >= 2 * height"
    [halving] = _calls(loop, "createScaledBitmap")
    assert "current.width / 2, current.height / 2, true" in _text(halving)
    final = [c for _, c in scaled if c.start_byte > loop.end_byte]
    assert len(final) == 1 and "width, height, true" in _text(final[0])

    readme = (android_app / "README.md").read_text()
    section = readme.split("\n## Preprocessing\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("bicubic", "setTargetSize", "halves", "crops first"):
        assert needle in section, needle


# --- Android 2(f): build files ------------------------------------------------------------------------


def _agp_version(root_build: Node) -> str:
    """The version string after id("com.android.application") in the root plugins block."""
    for node in nodes(root_build, "infix_expression"):
        if '"com.android.application"' in _text(node):
            return _text(list(nodes(node, "string_literal"))[-1]).strip('"')
    raise AssertionError("no com.android.application plugin version")


def _properties(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {key.strip(): re.sub(r"\\(.)", r"\1", value.strip()) for key, value in pairs}


def test_android_build_uses_compiler_options_and_the_gradle_its_agp_needs(android_app: Path) -> None:
    scripts = {p.relative_to(android_app).as_posix(): _parse(KOTLIN, p) for p in android_app.rglob("*.kts")}
    for name, root in scripts.items():
        assert "kotlinOptions" not in {_text(i) for i in nodes(root, "identifier")}, name

    app = scripts["app/build.gradle.kts"]
    assert "org.jetbrains.kotlin.gradle.dsl.JvmTarget" in {_text(q) for q in nodes(app, "qualified_identifier")}
    [kotlin] = [c for c in app.children if c.type == "call_expression" and _callee(c) == "kotlin"]
    [options] = _calls(kotlin, "compilerOptions")
    [jvm] = _calls(options, "set")
    assert _text(jvm) == "jvmTarget.set(JvmTarget.JVM_17)"
    assert "JavaVersion.VERSION_17" in _text(next(c for c in _calls(app, "compileOptions")))

    agp = _agp_version(scripts["build.gradle.kts"])
    assert agp == AGP_VERSION
    gradle = MIN_GRADLE_FOR_AGP[".".join(agp.split(".")[:2])]
    assert gradle == GRADLE_VERSION and MIN_GRADLE_FOR_AGP["8.7"] == "8.9"  # AGP 8.7.0 release notes: Gradle 8.9 minimum
    wrapper = android_app / "gradle/wrapper/gradle-wrapper.properties"
    assert _properties(wrapper)["distributionUrl"] == f"https://services.gradle.org/distributions/gradle-{gradle}-bin.zip"
    assert f"Android Gradle plugin {agp}" in wrapper.read_text(), "the pairing is stated where the pin is"

    readme = (android_app / "README.md").read_text()
    assert f"gradle wrapper --gradle-version {gradle}" in readme and "Android Studio" in readme
    assert "gradlew" in readme and "jar" in readme


# --- iOS 3 --------------------------------------------------------------------------------------------


def test_ios_states_and_enforces_xcode_15_3(ios_app: Path) -> None:
    project = yaml.safe_load((ios_app / "project.yml").read_text())
    assert project["options"]["xcodeVersion"] == "15.3"
    readme = (ios_app / "README.md").read_text()
    assert "Xcode 15.3 or later" in readme and "MLComputePlan" in readme and "iOS 17.4" in readme

    plan = _parse(SWIFT, ios_app / "SHViTDemo" / "ComputePlanView.swift")
    top = [c for c in plan.children if c.type in ("directive", "diagnostic")]
    assert [c.type for c in top] == ["directive", "diagnostic", "directive"]
    assert re.fullmatch(r"#if\s*!\s*compiler\(>=\s*5\.10\)", _text(top[0]).strip()), "Swift 5.10 ships with Xcode 15.3"
    assert _text(top[1]).startswith("#error(") and "Xcode 15.3" in _text(top[1])
    assert _text(top[2]).strip() == "#endif"


def _orientation_problems(device_family: str, info: dict[str, object]) -> list[str]:
    """What App Store validation and iPad multitasking would object to in these Info.plist keys."""
    families = set(device_family.replace(" ", "").split(","))
    phone = set(info.get("UISupportedInterfaceOrientations") or [])
    pad = set(info.get("UISupportedInterfaceOrientations~ipad") or phone)
    problems = []
    if not phone:
        problems.append("no supported orientations")
    if "2" in families and not info.get("UIRequiresFullScreen") and pad != ALL_ORIENTATIONS:
        problems.append(f"iPad without UIRequiresFullScreen must allow every orientation, not {sorted(pad)}")
    if "2" not in families and "UISupportedInterfaceOrientations~ipad" in info:
        problems.append("iPad orientations on an app that does not target iPad")
    return problems


def test_orientation_rules_catch_a_portrait_only_ipad_app() -> None:
    assert _orientation_problems("1,2", {"UISupportedInterfaceOrientations": [PORTRAIT]})
    assert not _orientation_problems("1,2", {"UISupportedInterfaceOrientations": [PORTRAIT], "UIRequiresFullScreen": True})
    assert not _orientation_problems("1,2", {"UISupportedInterfaceOrientations": sorted(ALL_ORIENTATIONS)})


def test_ios_orientations_are_consistent_with_the_device_family(ios_app: Path) -> None:
    target = yaml.safe_load((ios_app / "project.yml").read_text())["targets"]["SHViTDemo"]
    family = str(target["settings"]["base"]["TARGETED_DEVICE_FAMILY"])
    plist = plistlib.loads((ios_app / "SHViTDemo" / "Info.plist").read_bytes())
    properties = target["info"]["properties"]
    for info in (properties, plist):
        assert not _orientation_problems(family, info), _orientation_problems(family, info)
    assert family == "1" and properties["UISupportedInterfaceOrientations"] == plist["UISupportedInterfaceOrientations"] == [PORTRAIT]
    readme = (ios_app / "README.md").read_text()
    assert "iPhone app, portrait only" in readme


def test_ios_camera_frames_are_rotated_to_how_the_phone_is_held(ios_app: Path) -> None:
    app = {p.name: _parse(SWIFT, p) for p in sorted((ios_app / "SHViTDemo").glob("*.swift"))}
    feed = app["CameraFeed.swift"]
    [coordinator] = _calls(feed, "RotationCoordinator")
    assert [_text(a) for a in nodes(coordinator, "value_argument")] == ["device: device", "previewLayer: nil"]
    [observe] = _calls(feed, "observe")
    assert _text(next(nodes(observe, "value_argument"))) == r"\.videoRotationAngleForHorizonLevelCapture"
    assert _calls(next(nodes(observe, "lambda_literal")), "applyRotation"), "every change reaches the connection"
    initial = [c for c in _calls(_function(feed, "configureIfNeeded"), "applyRotation") if not _inside(c, observe)]
    assert initial and "videoRotationAngleForHorizonLevelCapture" in _text(initial[0]), "and the angle at start-up"

    apply = _function(feed, "applyRotation")
    [guard] = list(nodes(apply, "guard_statement"))
    assert _calls(guard, "isVideoRotationAngleSupported") and "(angle)" in _text(_calls(guard, "isVideoRotationAngleSupported")[0])
    [assignment] = list(nodes(apply, "assignment"))
    assert _text(assignment) == "connection.videoRotationAngle = angle" and guard.end_byte < assignment.start_byte
    for name, root in app.items():  # no fixed angle left that would be wrong in another grip
        for node in nodes(root, "assignment"):
            assert not re.fullmatch(r"\S*videoRotationAngle = \d+", _text(node)), (name, _text(node))

    [handler] = _calls(app["Classifier.swift"], "VNImageRequestHandler")
    assert "orientation: .up" in _text(handler), "frames and photos arrive upright: Vision must not turn them again"
    upright = _function(app["Preprocessing.swift"], "uprightCGImage")
    assert "imageOrientation" in _text(upright)


# --- everything generated still parses ----------------------------------------------------------------


def test_generated_sources_parse(android_app: Path, ios_app: Path) -> None:
    kotlin = sorted(android_app.rglob("*.kt")) + sorted(android_app.rglob("*.kts"))
    swift = sorted(ios_app.rglob("*.swift"))
    assert (android_app / ANDROID_SOURCES / "Images.kt") in kotlin and len(swift) >= 12
    problems = [p for path in kotlin for p in syntax_problems(KOTLIN, path)]
    problems += [p for path in swift for p in syntax_problems(SWIFT, path)]
    assert not problems, problems

"""What the iOS app needs to know about a Core ML package, read from its own spec.

Nothing is guessed: feature names, input size, colour space, class labels and the deployment
target come from the package's ``Model.mlmodel`` (coremltools' protobuf), so an app generated
for one export cannot silently drift from another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.coreml.ctimport import import_coremltools
from mobile_demo.errors import DemoError, NotAnImageClassifier, checked_model_path
from shvit.config import Preprocessing

COREML_SUFFIX = ".mlpackage"
APP_MIN_IOS = 17
"""The app itself needs iOS 17 (SwiftUI PhotosPicker, OSSignposter, MLComputeDevice)."""


@dataclass(frozen=True)
class CoreMLFacts:
    """The model facts the generated Swift code is specialised to."""

    path: Path
    model_type: str
    spec_version: int
    min_ios: int
    input_name: str
    width: int
    height: int
    color_space: str
    label_output: str
    probabilities_output: str
    class_labels: tuple[str, ...]
    crop_fraction: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_labels)


def read_coreml(path: Path) -> CoreMLFacts:
    """Facts of an image classifier ``.mlpackage``; a :class:`DemoError` naming the problem otherwise."""
    path = checked_model_path(
        path, suffix=COREML_SUFFIX, folder=True, target="coreml", kind="Core ML package", takes="the iOS demo takes a .mlpackage folder"
    )
    ct = import_coremltools()
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as exc:  # coremltools raises bare Exception/IOError/DecodeError for damaged packages
        raise DemoError(f"model {path} is not a readable Core ML package ({type(exc).__name__}: {exc}); re-export it") from None
    return facts_from_spec(spec, path)


def facts_from_spec(spec: Any, path: Path) -> CoreMLFacts:
    """Validate a loaded ``Model`` protobuf as an image classifier and extract its facts."""
    description = spec.description
    model_type = spec.WhichOneof("Type") or "unknown"
    inputs = list(description.input)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise NotAnImageClassifier(f"{path.name} has {len(inputs)} inputs ({names}): the demo runs models with one image input")
    image_input = inputs[0]
    if image_input.type.WhichOneof("Type") != "imageType":
        raise NotAnImageClassifier(
            f"{path.name} takes a {image_input.type.WhichOneof('Type')} input {image_input.name!r}, not an image: "
            "export with an image input (the coreml target does)"
        )
    if not description.predictedFeatureName or not description.predictedProbabilitiesName:
        raise NotAnImageClassifier(
            f"{path.name} is not a classifier (no class label and probabilities outputs): "
            "export it as a classifier with class labels (the coreml target does)"
        )
    labels = _class_labels(spec, path)
    if len(labels) < 2:
        raise NotAnImageClassifier(f"{path.name} has {len(labels)} class labels: a classifier needs at least two")
    image = image_input.type.imageType
    from coremltools.proto import FeatureTypes_pb2

    metadata = {
        "short_description": description.metadata.shortDescription,
        "author": description.metadata.author,
        "license": description.metadata.license,
        "version": description.metadata.versionString,
        **dict(description.metadata.userDefined),
    }
    return CoreMLFacts(
        path=path,
        model_type=model_type,
        spec_version=int(spec.specificationVersion),
        min_ios=max(APP_MIN_IOS, _min_ios(int(spec.specificationVersion))),
        input_name=image_input.name,
        width=int(image.width),
        height=int(image.height),
        color_space=FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(image.colorSpace),
        label_output=description.predictedFeatureName,
        probabilities_output=description.predictedProbabilitiesName,
        class_labels=labels,
        crop_fraction=Preprocessing(input_size=int(image.height)).crop_fraction,
        metadata={k: v for k, v in metadata.items() if v},
    )


def _min_ios(spec_version: int) -> int:
    """Oldest iOS that runs this spec version, from coremltools' own target table."""
    ct = import_coremltools()
    versions = [int(t.name[3:]) for t in ct.target if t.name.startswith("iOS") and t.value == spec_version]
    return min(versions) if versions else APP_MIN_IOS


def _class_labels(spec: Any, path: Path) -> tuple[str, ...]:
    model_type = spec.WhichOneof("Type")
    if model_type == "neuralNetworkClassifier":
        nn = spec.neuralNetworkClassifier
        if nn.WhichOneof("ClassLabels") == "int64ClassLabels":
            return tuple(str(v) for v in nn.int64ClassLabels.vector)
        return tuple(nn.stringClassLabels.vector)
    if model_type == "mlProgram":
        return _program_labels(spec.mlProgram, path)
    raise NotAnImageClassifier(
        f"{path.name} is a {model_type} model: the demo reads class labels from ML Program or neural-network classifiers"
    )


def _program_labels(program: Any, path: Path) -> tuple[str, ...]:
    """Labels are the ``classes`` argument of the program's ``classify`` op (inline or a named const)."""
    for function in program.functions.values():
        block = function.block_specializations[function.opset]
        consts = {op.outputs[0].name: op for op in block.operations if op.type == "const" and op.outputs}
        for op in block.operations:
            if op.type != "classify" or "classes" not in op.inputs:
                continue
            argument = op.inputs["classes"].arguments[0]
            if argument.WhichOneof("binding") == "value":
                return _label_values(argument.value)
            const = consts.get(argument.name)
            if const is not None and "val" in const.attributes:
                return _label_values(const.attributes["val"])
    raise NotAnImageClassifier(f"{path.name} has classifier outputs but no classify op with class labels: re-export it as a classifier")


def _label_values(value: Any) -> tuple[str, ...]:
    """String or integer labels, stored as one tensor or as a list of scalar tensors."""
    immediate = value.immediateValue
    if immediate.WhichOneof("value") == "list":
        items = [item for v in immediate.list.values for item in _tensor_values(v.immediateValue.tensor)]
    else:
        items = _tensor_values(immediate.tensor)
    return tuple(str(v) for v in items)


def _tensor_values(tensor: Any) -> list[str | int]:
    kind = tensor.WhichOneof("value")
    if kind == "strings":
        return list(tensor.strings.values)
    if kind == "longInts":
        return [int(v) for v in tensor.longInts.values]
    if kind == "ints":
        return [int(v) for v in tensor.ints.values]
    return []

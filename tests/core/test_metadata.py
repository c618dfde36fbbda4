"""inflate.core.metadata: one format for model, weight and ONNX files."""

import json

import pytest

from inflate.core import InvalidInputError
from inflate.core.metadata import KINDS, METADATA_KEY, read_metadata, write_metadata

FIELDS = {
    "model": {"source": "resnet18", "source_kwargs": {"num_classes": 10}, "t": 8, "policy": "i3d", "init": "tile",
              "pad_mode": "replicate", "overrides": {"layer1.*": 1}, "input_size": [3, 224, 224],
              "attention": None, "tubelet": None, "library_version": "0.1.0"},
    "weights": {"source_file": "resnet18.safetensors", "t": 4, "policy": "i3d", "init": "center"},
    "onnx": {"t": 8, "policy": "i3d", "init": "tile", "pad_mode": "zeros", "dynamic_size": True},
}


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind) -> None:
    raw = write_metadata(kind, FIELDS[kind])
    assert json.loads(raw) == {"format_version": 1, "kind": kind, **FIELDS[kind]}  # plain JSON, readable anywhere
    assert read_metadata(raw, "f") == {"format_version": 1, "kind": kind, **FIELDS[kind]}
    assert METADATA_KEY == "inflate"


def test_a_model_file_without_kind_reads_as_a_model() -> None:
    old = json.dumps({"format_version": 1, **FIELDS["model"]})  # written before "kind" existed
    assert read_metadata(old, "old.safetensors")["source"] == "resnet18"


@pytest.mark.parametrize(
    "kind,change,message",
    [("model", {"source_kwargs": {"pretrained": True}}, "source_kwargs 'pretrained' is not one inflate writes"),
     ("model", {"checkpoint_path": "/etc/passwd"}, "key 'checkpoint_path' is not one inflate writes"),
     ("model", {"input_size": [3, 0, 224]}, "'input_size' must be three positive integers"),
     ("weights", {"source": "resnet18"}, "key 'source' is not one inflate writes"),
     ("onnx", {"t": 0}, "'t' must be >= 1, got 0"),
     ("onnx", {"dynamic_size": "yes"}, "'dynamic_size' is a str; expected bool"),
     ("model", {"kind": "script"}, "'kind' 'script' is not one inflate writes")],
    ids=["model-kwargs", "model-key", "model-size", "weights-key", "onnx-t", "onnx-type", "unknown-kind"],
)
def test_refused(kind, change, message) -> None:
    meta = {"format_version": 1, "kind": kind, **FIELDS[kind], **change}
    with pytest.raises(InvalidInputError, match=message):
        read_metadata(json.dumps(meta), "f.safetensors")
    if "kind" not in change:
        with pytest.raises(InvalidInputError, match=message):  # never written either
            write_metadata(kind, {**FIELDS[kind], **change})


def test_missing_and_malformed() -> None:
    with pytest.raises(InvalidInputError, match=r"f: metadata lacks 'policy'"):
        read_metadata(json.dumps({"kind": "onnx", "t": 2, "init": "tile"}), "f")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_metadata("{", "f")
    with pytest.raises(InvalidInputError, match="is a JSON list, not an object"):
        read_metadata("[]", "f")
    with pytest.raises(InvalidInputError, match="unknown metadata kind 'graph'"):
        write_metadata("graph", {})

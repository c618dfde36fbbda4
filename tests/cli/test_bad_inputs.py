"""Bad and unusual inputs, as a new user types them: each gives its documented exit code, one
line on stderr that names what is at fault, no traceback, nothing on stdout and no file left
behind (hidden temporaries included). The exit codes are the README's table."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from inflate.cli import app

CNN, VIT = "test_efficientnet", "test_vit"
BAD_INPUT, CANNOT_CONVERT, OUTPUT = 2, 3, 4

runner = CliRunner()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/inflate-bad-inputs-pwned",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Every bad file the cases below read, made once."""
    folder = tmp_path_factory.mktemp("inputs")
    cnn = timm.create_model(CNN).state_dict()
    save_file(cnn, str(folder / "cnn.safetensors"))
    good = (folder / "cnn.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (folder / "garbage.safetensors").write_bytes(b"\x00" * 64)
    torch.save(cnn, folder / "cnn.pth")
    data = (folder / "cnn.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 3])
    (folder / "random.pth").write_bytes(bytes(range(256)) * 16)
    with open(folder / "evil.pth", "wb") as handle:
        pickle.dump({"conv_stem.weight": _Evil()}, handle, protocol=2)
    torch.save([torch.zeros(3)], folder / "list.pth")
    nan = dict(cnn)
    nan["bn1.weight"] = nan["bn1.weight"].clone()
    nan["bn1.weight"][3] = float("nan")
    save_file(nan, str(folder / "nan.safetensors"))
    quantised = dict(cnn)
    quantised["conv_stem.weight"] = (quantised["conv_stem.weight"] * 40).to(torch.int8)
    save_file(quantised, str(folder / "int8.safetensors"))
    save_file(timm.create_model(CNN, num_classes=7).state_dict(), str(folder / "seven_classes.safetensors"))
    save_file(timm.create_model(VIT).state_dict(), str(folder / "vit.safetensors"))
    save_file({"a.weight": torch.zeros(3, 4)}, str(folder / "no_kernels.safetensors"))
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3, 3)}, str(folder / "already3d.safetensors"))
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(folder / "conv2d.safetensors"))
    (folder / "weights.txt").write_text("not weights")
    (folder / "garbage.onnx").write_bytes(b"\x08\x07garbage")
    save_file({"a": torch.zeros(1)}, str(folder / "foreign.safetensors"))
    save_file({"a": torch.zeros(1)}, str(folder / "badjson.safetensors"), metadata={"inflate": "{not json"})
    save_file({"a": torch.zeros(1)}, str(folder / "number.safetensors"), metadata={"inflate": "42"})
    meta = {"format_version": 1, "source": CNN, "source_kwargs": {"pretrained": True}, "t": 2, "policy": "i3d",
            "init": "tile", "pad_mode": "replicate", "input_size": [3, 160, 160], "library_version": "0.1.0"}
    save_file({"a": torch.zeros(1)}, str(folder / "pretrained_meta.safetensors"),
              metadata={"inflate": json.dumps(meta)})
    save_file({"a": torch.zeros(1)}, str(folder / "path_source.safetensors"),
              metadata={"inflate": json.dumps({**meta, "source_kwargs": {}, "source": "/etc/passwd"})})
    save_file({"a": torch.zeros(1)}, str(folder / "huge_classes.safetensors"),
              metadata={"inflate": json.dumps({**meta, "source_kwargs": {"num_classes": 10**12}})})
    save_file({"a": torch.zeros(1)}, str(folder / "huge_override.safetensors"),
              metadata={"inflate": json.dumps({**meta, "source_kwargs": {},
                                               "overrides": {"conv_stem": {"kernel": 100000, "stride": 1}}})})
    torch.save({"a": torch.zeros(2)}, folder / "plain.pt")
    plain = (folder / "plain.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(plain[: len(plain) // 2])
    (folder / "notes.txt").write_text("hello")
    os.mkfifo(folder / "pipe")
    kernel = {"dtype": "F32", "shape": [2, 2, 3, 3]}  # 36 floats, 144 bytes
    for name, entries in (
        ("huge_shape", {"conv.weight": {**kernel, "shape": [100000, 100000, 3, 3], "data_offsets": [0, 144]}}),
        ("negative_shape", {"conv.weight": {**kernel, "shape": [-2, 2, 3, 3], "data_offsets": [0, 144]}}),
        ("overlapping", {"a.weight": {**kernel, "data_offsets": [0, 144]},
                         "b.weight": {**kernel, "data_offsets": [72, 216]}}),
    ):
        header = json.dumps(entries).encode()
        (folder / f"{name}.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(216))
    return folder


# (id, arguments with {in} and {out} placeholders, exit code, what the message must name)
CASES = [
    # usage
    ("time-not-an-integer", "convert CNN -t abc", BAD_INPUT, "'--time'"),
    ("missing-model", "convert", BAD_INPUT, "Missing argument 'model'"),
    ("unknown-option", "check CNN --bogus", BAD_INPUT, "--bogus"),
    ("unknown-command", "nosuch", BAD_INPUT, "nosuch"),
    # values
    ("time-zero", "convert CNN -t 0 -o {out}/o.safetensors", BAD_INPUT, "--time (the clip length in frames) must be an integer >= 1, got 0"),
    ("time-negative", "check CNN -t -3", BAD_INPUT, "got -3"),
    ("unknown-model", "convert resnet5O -t 2 -o {out}/o.safetensors", BAD_INPUT, "unknown model 'resnet5O'"),
    ("unknown-policy", "convert CNN -t 2 --policy nope -o {out}/o.safetensors", BAD_INPUT, "unknown policy 'nope'"),
    ("unknown-init", "check CNN -t 2 --init middle", BAD_INPUT, "unknown init 'middle'"),
    ("unknown-pad-mode", "convert CNN -t 2 --pad-mode reflect -o {out}/o.safetensors", BAD_INPUT, "'reflect'"),
    ("unknown-attention", "convert VIT -t 2 --attention sideways -o {out}/o.safetensors", BAD_INPUT, "'sideways'"),
    ("tubelet-zero", "convert VIT -t 2 --tubelet 0 -o {out}/o.safetensors", BAD_INPUT, "--tubelet must be >= 1"),
    ("override-without-value", "check CNN -t 2 --override layer1", BAD_INPUT, "--override 'layer1'"),
    ("override-superscript-digit", "check CNN -t 2 --override conv_stem=\u00b2", BAD_INPUT, "conv_stem=\u00b2"),
    ("override-zero-kernel", "check CNN -t 2 --override conv_stem=0", BAD_INPUT, "--override 'conv_stem=0'"),
    ("override-bad-stride", "check CNN -t 2 --override conv_stem=3:x", BAD_INPUT, "--override 'conv_stem=3:x'"),
    ("override-matches-nothing", "convert CNN -t 2 --override 'layer9.*=3' -o {out}/o.safetensors", BAD_INPUT,
     "--override layer9.*=3: the pattern matches no layer"),
    ("num-classes-negative", "convert CNN -t 2 --num-classes -5 -o {out}/o.safetensors", BAD_INPUT,
     "--num-classes must be >= 0"),
    ("unknown-format", "convert CNN -t 2 --format tflite -o {out}/o.tflite", BAD_INPUT, "unknown format 'tflite'"),
    ("format-contradicts-suffix", "convert CNN -t 2 --format pt -o {out}/o.safetensors", BAD_INPUT,
     "--format pt contradicts"),
    ("unknown-suffix", "convert CNN -t 2 -o {out}/o.bin", BAD_INPUT, "unknown format 'bin'"),
    ("opset-too-low", "convert CNN -t 2 --opset 3 -o {out}/o.onnx", BAD_INPUT, "--opset 3"),
    ("opset-too-high", "convert CNN -t 2 --opset 99 -o {out}/o.onnx", BAD_INPUT, "--opset 99"),
    ("opset-on-safetensors", "convert CNN -t 2 --opset 17 -o {out}/o.safetensors", BAD_INPUT,
     "--opset 17 does not apply to safetensors"),
    ("unknown-exporter", "convert CNN -t 2 --exporter foo -o {out}/o.onnx", BAD_INPUT, "--exporter 'foo'"),
    ("tubelet-on-cnn", "convert CNN -t 2 --tubelet 3 -o {out}/o.safetensors", BAD_INPUT,
     "--tubelet 3 does not apply"),
    ("attention-on-cnn", "check CNN -t 2 --attention divided", BAD_INPUT, "--attention divided does not apply"),
    ("vit-odd-t", "convert VIT -t 3 -o {out}/o.safetensors", BAD_INPUT, "-t 3 is not a multiple of the tubelet size 2"),
    ("vit-tubelet-above-t", "check VIT -t 4 --tubelet 5", BAD_INPUT, "Use -t 5"),
    ("huge-t", "convert CNN -t 5000000 -o {out}/o.safetensors", BAD_INPUT, "-t 5000000 needs at least"),
    ("two-stream-preset", "convert i3d_two_stream -t 16 -o {out}/o.safetensors", BAD_INPUT, "i3d_two_stream"),
    ("override-on-preset", "convert i3d_rgb -t 16 --override x=3 -o {out}/o.safetensors", BAD_INPUT,
     "--override does not apply to the ready 3D model i3d_rgb"),
    ("policy-on-preset", "convert i3d_rgb -t 16 --policy i3d -o {out}/o.safetensors", BAD_INPUT,
     "--policy i3d does not apply to the ready 3D model i3d_rgb"),
    ("init-on-preset", "convert i3d_flow -t 16 --init center -o {out}/o.safetensors", BAD_INPUT,
     "--init center does not apply to the ready 3D model i3d_flow"),
    # --weights files
    ("pretrained-and-weights", "convert CNN -t 2 --pretrained -w {in}/cnn.pth -o {out}/o.safetensors", BAD_INPUT,
     "either --pretrained or --weights"),
    ("weights-missing", "convert CNN -t 2 -w {in}/missing.pth -o {out}/o.safetensors", BAD_INPUT, "missing.pth"),
    ("weights-folder", "convert CNN -t 2 -w {in} -o {out}/o.safetensors", BAD_INPUT, "is a folder"),
    ("weights-unknown-suffix", "convert CNN -t 2 -w {in}/weights.txt -o {out}/o.safetensors", BAD_INPUT,
     "unknown weights format '.txt'"),
    ("weights-truncated-safetensors", "convert CNN -t 2 -w {in}/truncated.safetensors -o {out}/o.safetensors",
     BAD_INPUT, "truncated.safetensors is not a readable .safetensors file"),
    ("weights-garbage-safetensors", "convert CNN -t 2 -w {in}/garbage.safetensors -o {out}/o.safetensors",
     BAD_INPUT, "garbage.safetensors is not a readable .safetensors file"),
    ("weights-truncated-pth", "convert CNN -t 2 -w {in}/truncated.pth -o {out}/o.safetensors", BAD_INPUT,
     "truncated.pth is not a readable PyTorch file"),
    ("weights-random-bytes-pth", "convert CNN -t 2 -w {in}/random.pth -o {out}/o.safetensors", BAD_INPUT,
     "random.pth"),
    ("weights-pickle-with-code", "convert CNN -t 2 -w {in}/evil.pth -o {out}/o.safetensors", BAD_INPUT,
     "refused to load"),
    ("weights-not-a-state-dict", "convert CNN -t 2 -w {in}/list.pth -o {out}/o.safetensors", BAD_INPUT,
     "list.pth holds no tensors"),
    ("weights-nan", "convert CNN -t 2 -w {in}/nan.safetensors -o {out}/o.safetensors", BAD_INPUT,
     "tensor 'bn1.weight'"),
    ("weights-int8", "convert CNN -t 2 -w {in}/int8.safetensors -o {out}/o.safetensors", BAD_INPUT,
     "'conv_stem.weight' is int8"),
    ("weights-wrong-classes", "check CNN -t 2 -w {in}/seven_classes.safetensors", BAD_INPUT,
     "tensor 'classifier.bias': expected shape (1000,), got (7,)"),
    ("weights-fifo", "convert CNN -t 2 -w {in}/pipe -o {out}/o.safetensors", BAD_INPUT,
     "pipe is a FIFO (named pipe), not a regular file"),
    # ONNX input
    ("onnx-missing", "convert {in}/missing.onnx -t 2 -o {out}/o.onnx", BAD_INPUT, "missing.onnx does not exist"),
    ("onnx-garbage", "convert {in}/garbage.onnx -t 2 -o {out}/o.onnx", BAD_INPUT,
     "garbage.onnx is not a readable ONNX file"),
    ("onnx-with-weights", "convert {in}/garbage.onnx -t 2 -w {in}/cnn.pth -o {out}/o.onnx", BAD_INPUT,
     "--weights does not apply to an ONNX input"),
    ("onnx-to-safetensors", "convert {in}/garbage.onnx -t 2 -o {out}/o.safetensors", BAD_INPUT,
     "give the output an .onnx suffix"),
    ("onnx-with-attention", "convert {in}/garbage.onnx -t 2 --attention divided -o {out}/o.onnx", BAD_INPUT,
     "--attention divided does not apply to an ONNX input"),
    ("onnx-with-tubelet", "convert {in}/garbage.onnx -t 2 --tubelet 2 -o {out}/o.onnx", BAD_INPUT,
     "--tubelet 2 does not apply to an ONNX input"),
    ("onnx-with-zero-classes", "convert {in}/garbage.onnx -t 2 --num-classes 0 -o {out}/o.onnx", BAD_INPUT,
     "--num-classes 0 does not apply to an ONNX input"),
    ("onnx-with-exporter", "convert {in}/garbage.onnx -t 2 --exporter dynamo -o {out}/o.onnx", BAD_INPUT,
     "--exporter dynamo does not apply to an ONNX input"),
    ("onnx-with-format-pt", "convert {in}/garbage.onnx -t 2 --format pt", BAD_INPUT,
     "--format pt: an ONNX input"),
    # options of the ONNX output on other formats
    ("no-verify-on-safetensors", "convert CNN -t 2 --no-verify -o {out}/o.safetensors", BAD_INPUT,
     "--no-verify does not apply to safetensors output"),
    ("exporter-on-pt", "convert CNN -t 2 --exporter dynamo -o {out}/o.pt", BAD_INPUT,
     "--exporter dynamo does not apply to pt output"),
    # outputs
    ("output-exists", "convert CNN -t 2 -o {out}/exists.safetensors", OUTPUT, "exists.safetensors exists; pass --force"),
    ("output-is-a-folder", "convert CNN -t 2 -o {out}", OUTPUT, "is a folder; give a file name"),
    ("output-folder-missing", "convert CNN -t 2 -o {out}/no/o.safetensors", OUTPUT, "folder"),
    ("output-fifo-even-with-force", "convert CNN -t 2 --force -f safetensors -o {out}/fifo", OUTPUT,
     "fifo exists and is a FIFO (named pipe), not a regular file"),
    # inspect
    ("inspect-missing", "inspect {in}/missing.safetensors", BAD_INPUT, "missing.safetensors does not exist"),
    ("inspect-folder", "inspect {in}", BAD_INPUT, "is a folder"),
    ("inspect-foreign", "inspect {in}/foreign.safetensors", BAD_INPUT, "has no 'inflate' metadata"),
    ("inspect-metadata-not-json", "inspect {in}/badjson.safetensors", BAD_INPUT, "metadata is not valid JSON"),
    ("inspect-metadata-not-object", "inspect {in}/number.safetensors", BAD_INPUT, "metadata is a JSON int"),
    ("inspect-metadata-pretrained", "inspect {in}/pretrained_meta.safetensors", BAD_INPUT,
     "source_kwargs 'pretrained'"),
    ("inspect-metadata-path-source", "inspect {in}/path_source.safetensors", BAD_INPUT, "'/etc/passwd'"),
    ("inspect-metadata-huge-classes", "inspect {in}/huge_classes.safetensors", BAD_INPUT,
     "source_kwargs 'num_classes' must be an integer in 0..1000000"),
    ("inspect-metadata-huge-override", "inspect {in}/huge_override.safetensors", BAD_INPUT,
     "override 'conv_stem' kernel 100000 is outside 1..64"),
    ("inspect-truncated-pt", "inspect {in}/truncated.pt", BAD_INPUT, "truncated.pt is not a readable PyTorch file"),
    ("inspect-pickle-with-code", "inspect {in}/evil.pth", BAD_INPUT, "refused to load"),
    ("inspect-unknown-suffix", "inspect {in}/notes.txt", BAD_INPUT, "'.txt'"),
    ("inspect-garbage-onnx", "inspect {in}/garbage.onnx", BAD_INPUT, "garbage.onnx is not a readable ONNX file"),
    # inflate weights
    ("weights-cmd-vit", "weights {in}/vit.safetensors {out}/o.safetensors -t 4", BAD_INPUT, "holds a transformer"),
    ("weights-cmd-already-3d", "weights {in}/already3d.safetensors {out}/o.safetensors -t 4", BAD_INPUT,
     "already 3D ('conv.weight' is 5D)"),
    ("weights-cmd-2d-target", "weights {in}/conv2d.safetensors {out}/o.safetensors -t 4 --target {in}/conv2d.safetensors",
     BAD_INPUT, "the target holds no 5D kernel"),
    ("weights-cmd-no-kernels", "weights {in}/no_kernels.safetensors {out}/o.safetensors -t 4", BAD_INPUT,
     "no 4D convolution kernel"),
    ("weights-cmd-int8", "weights {in}/int8.safetensors {out}/o.safetensors -t 4", BAD_INPUT,
     "'conv_stem.weight' is an integer (I8) kernel"),
    ("weights-cmd-nan", "weights {in}/nan.safetensors {out}/o.safetensors -t 4", BAD_INPUT, "tensor 'bn1.weight'"),
    ("weights-cmd-onnx-output", "weights {in}/conv2d.safetensors {out}/o.onnx -t 4", BAD_INPUT,
     "o.onnx: inflated weights are written as safetensors"),
    ("weights-cmd-override-nothing", "weights {in}/conv2d.safetensors {out}/o.safetensors -t 4 --override 'x*=3'",
     BAD_INPUT, "'x*' matches no kernel"),
    ("weights-cmd-target-missing", "weights {in}/conv2d.safetensors {out}/o.safetensors -t 4 --target {in}/no.pth",
     BAD_INPUT, "no.pth does not exist"),
    ("weights-cmd-unknown-policy", "weights {in}/conv2d.safetensors {out}/o.safetensors -t 4 --policy nope",
     BAD_INPUT, "unknown policy 'nope'"),
    ("weights-cmd-huge-override", "weights {in}/conv2d.safetensors {out}/o.safetensors -t 2 --override 'conv*=100000'",
     BAD_INPUT, "at most 64 frames"),
    ("weights-cmd-huge-header-shape", "weights {in}/huge_shape.safetensors {out}/o.safetensors -t 2", BAD_INPUT,
     "huge_shape.safetensors is damaged: tensor 'conv.weight' of shape (100000, 100000, 3, 3)"),
    ("weights-cmd-negative-shape", "weights {in}/negative_shape.safetensors {out}/o.safetensors -t 2", BAD_INPUT,
     "negative_shape.safetensors is damaged: tensor 'conv.weight' has shape [-2, 2, 3, 3]"),
    ("weights-cmd-overlapping-tensors", "weights {in}/overlapping.safetensors {out}/o.safetensors -t 2", BAD_INPUT,
     "'a.weight' and 'b.weight' share bytes"),
    # an output that is the command's own input, even with --force
    ("weights-cmd-output-is-input", "weights {in}/conv2d.safetensors {in}/conv2d.safetensors -t 2 --force", OUTPUT,
     "is the input"),
    ("convert-output-is-weights", "convert CNN -t 2 -w {in}/cnn.safetensors -o {in}/cnn.safetensors --force", OUTPUT,
     "is the input"),
    ("convert-onnx-output-is-input", "convert {in}/garbage.onnx -t 2 -o {in}/garbage.onnx --force", OUTPUT,
     "is the input"),
    # names that are not what the command takes
    ("check-3d-preset", "check i3d_rgb -t 2", BAD_INPUT, "i3d_rgb is already a 3D model"),
    ("num-classes-huge", "convert CNN -t 2 --num-classes 100000000000 -o {out}/o.safetensors", BAD_INPUT,
     "--num-classes 100000000000: at most"),
    ("weights-pickle-names-what-it-refused", "convert CNN -t 2 -w {in}/evil.pth -o {out}/o.safetensors", BAD_INPUT,
     "posix.system"),
]


def _argv(template: str, inputs: Path, out: Path) -> list[str]:
    import shlex

    names = {"CNN": CNN, "VIT": VIT}
    return [names.get(part) or part.replace("{in}", str(inputs)).replace("{out}", str(out))
            for part in shlex.split(template)]


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("template, code, culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(inputs: Path, tmp_path: Path, template: str, code: int, culprit: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "exists.safetensors").write_bytes(b"keep me")
    os.mkfifo(out / "fifo")
    before_out, before_in = sorted(os.listdir(out)), sorted(os.listdir(inputs))
    marker = Path("/tmp/inflate-bad-inputs-pwned")
    marker.unlink(missing_ok=True)

    result = runner.invoke(app, _argv(template, inputs, out))

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert culprit in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "weights_only=False" not in result.stderr
    assert "unexpected" not in lines[0]
    assert result.stdout == ""
    assert sorted(os.listdir(out)) == before_out and (out / "exists.safetensors").read_bytes() == b"keep me"
    assert sorted(os.listdir(inputs)) == before_in
    assert not marker.exists()


def test_readme_exit_code_table_matches_the_codes_asserted_here() -> None:
    import re

    from inflate.cli import errors

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = {int(code): meaning for code, meaning in re.findall(r"^\| (\d) \| (.+?) \|$", readme, re.M)}
    assert sorted(table) == [0, 1, 2, 3, 4]
    assert (errors.EXIT_OK, errors.EXIT_CHECK_FAILED, errors.EXIT_BAD_INPUT, errors.EXIT_UNSUPPORTED,
            errors.EXIT_OUTPUT) == (0, 1, 2, 3, 4)
    assert table[BAD_INPUT].startswith("bad input") and table[CANNOT_CONVERT].startswith("cannot convert")
    assert table[OUTPUT].startswith("output problem") and "no space left" in table[OUTPUT]
    assert table[1].startswith("a check failed")
    # every code the cases assert has its row, and each row's examples are among the cases
    assert {code for _, _, code, _ in CASES} <= set(table)
    assert "appeared during the write" in table[OUTPUT] and "not a regular file" in table[OUTPUT]


def test_an_allocation_that_fails_is_one_line_naming_the_settings() -> None:
    """Settings too large for the machine (a huge --num-classes, --time or --size) end in torch's
    allocator: one line saying so, exit 2, not an 'unexpected RuntimeError'."""
    from inflate.cli.errors import exit_code_for, format_error

    error = RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
                         "you tried to allocate 819200000000 bytes. Error code 12 (Cannot allocate memory)")
    line = format_error(error)
    assert line.startswith("error: out of memory") and "--num-classes" in line and "unexpected" not in line
    assert exit_code_for(error) == BAD_INPUT and exit_code_for(MemoryError()) == BAD_INPUT
    assert exit_code_for(RuntimeError("something else")) == CANNOT_CONVERT

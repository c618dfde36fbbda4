"""`inflate list --rules --markdown` and the README's supported-ops table, generated from the registries."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from inflate.adapters.torch.registry import list_handlers
from inflate.cli.app import app
from inflate.cli.listing import supported_ops_table
from inflate.core import list_rules

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- supported-ops:start (generated: inflate list --rules --markdown) -->", "<!-- supported-ops:end -->"


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text()
    assert START in text and END in text, "the README has lost its supported-ops markers"
    in_readme = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert in_readme == supported_ops_table(), (
        "README's supported-ops table is stale: replace it with the output of `inflate list --rules --markdown`")


def test_table_has_a_row_per_rule_naming_its_handlers() -> None:
    rows = supported_ops_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [rule.key.kind for rule in list_rules()]
    row = next(r for r in rows if r.startswith("| `conv_transpose` |"))
    assert "`nn.ConvTranspose2d`" in row and "time stride 1" in row
    assert sum(h.kind == "conv_transpose" for h in list_handlers()) == 1


def test_markdown_flag_prints_the_table_and_refuses_other_listings() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["list", "--rules", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == supported_ops_table()
    result = runner.invoke(app, ["list", "--markdown"])
    assert result.exit_code == 2 and "--markdown prints the supported-ops table" in result.output

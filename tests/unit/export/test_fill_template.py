"""export/fill_template.py: values, optional blocks, strictness; every template's keys documented."""

from __future__ import annotations

import re

import pytest

from export import fill_template as ft


@pytest.fixture
def template(tmp_path, monkeypatch):
    monkeypatch.setattr(ft, "TEMPLATES_DIR", tmp_path)

    def write(text: str) -> str:
        (tmp_path / "t.pbtxt").write_text(text)
        return "t"

    return write


def test_values_lists_and_bools(template):
    name = template('name: "${name}"\ngpus: [ ${gpus} ]\nflag: ${on}\n')
    assert (
        ft.fill_template(name, {"name": "m", "gpus": [0, 2], "on": True})
        == 'name: "m"\ngpus: [ 0, 2 ]\nflag: true\n'
    )


def test_blocks_are_kept_or_dropped(template):
    name = template("a: 1\n#if gpus\ngpus: [ ${gpus} ]\n#endif\n#if warmup\nw: 1\n#endif\nb: 2\n")
    assert ft.fill_template(name, {"gpus": [1], "warmup": True}) == "a: 1\ngpus: [ 1 ]\nw: 1\nb: 2\n"
    assert ft.fill_template(name, {"gpus": [], "warmup": False}) == "a: 1\nb: 2\n"


def test_missing_and_unused_keys_are_errors(template):
    name = template("a: ${a}\n#if flag\nb: 1\n#endif\n")
    with pytest.raises(KeyError, match=r"missing \['flag'\], unused \['c'\]"):
        ft.fill_template(name, {"a": 1, "c": 2})


def test_unbalanced_block_is_an_error(template):
    name = template("#if a\nx: 1\n")
    with pytest.raises(ValueError, match="unbalanced"):
        ft.fill_template(name, {"a": True})


def test_unknown_template_names_the_known_ones():
    with pytest.raises(KeyError, match="python_llm"):
        ft.fill_template("no_such_template", {})


def test_pbtxt_string_escapes():
    assert ft.pbtxt_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_every_template_key_is_documented():
    readme = (ft.TEMPLATES_DIR / "README.md").read_text()
    documented = set()
    for row in re.findall(r"^\| (`[^|]+) \|", readme, re.M):
        documented |= set(re.findall(r"`(\w+)`", row))
    templates = sorted(ft.TEMPLATES_DIR.glob("*.pbtxt"))
    assert templates
    for path in templates:
        undocumented = ft.template_keys(path.read_text()) - documented
        assert not undocumented, f"{path.name}: keys {sorted(undocumented)} not in templates/README.md"

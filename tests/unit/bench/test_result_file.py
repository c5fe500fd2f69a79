"""bench.result_file: every benchmark's JSON results, folders made as needed."""

from __future__ import annotations

import json

from bench.result_file import write_result


def test_writes_indented_json_into_a_new_folder(tmp_path):
    out = write_result(tmp_path / "new" / "deeper" / "r.json", {"pairs_per_s": 4.8, "rows": [1, 2]})
    assert out == tmp_path / "new" / "deeper" / "r.json"
    assert json.loads(out.read_text()) == {"pairs_per_s": 4.8, "rows": [1, 2]}
    assert out.read_text().startswith('{\n  "pairs_per_s"')

"""The osquery log files: one JSON object per line, rotated by size, never more than the bound."""

from __future__ import annotations

import json

from winmdm.storage.agent_logs import AgentLogFiles


def test_lines_are_one_json_object_each_and_rotation_keeps_the_files_bounded(tmp_path) -> None:
    files = AgentLogFiles(tmp_path / "logs", max_bytes=4096, backups=2)
    line = {"name": "q", "columns": {"path": "C:\\\\Windows\n" + "x" * 200}}
    for _ in range(200):
        files.write("result", 7, [line, "not an object", None])
    files.close()
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["result.log", "result.log.1", "result.log.2"]
    for path in (tmp_path / "logs").iterdir():
        assert path.stat().st_size <= 4096
        for text in path.read_text("utf-8").splitlines():
            value = json.loads(text)
            assert value["winmdm_host_id"] == 7
            assert value in (
                {**line, "winmdm_host_id": 7},
                {"line": "not an object", "winmdm_host_id": 7},
                {"line": None, "winmdm_host_id": 7},
            )


def test_a_lone_surrogate_is_written_as_its_escape(tmp_path) -> None:
    files = AgentLogFiles(tmp_path, max_bytes=1 << 20)
    files.write("status", 1, [{"message": "bad \ud800 half"}])
    files.close()
    written = (tmp_path / "status.log").read_bytes()
    assert b"\\ud800" in written and json.loads(written)["message"] == "bad \ud800 half"

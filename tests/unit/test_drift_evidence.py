"""Evidence of in-instance changes and the patch made of it: pure, from bytes."""

from __future__ import annotations

from kiln.drift import capture, source_path
from kiln.model import FileChange
from kiln.model.drift import EVIDENCE_BYTES


def test_source_path_is_the_longest_tail_in_the_context() -> None:
    context = {"VERSION", "templates/index.html", "index.html"}
    assert source_path("/app/templates/index.html", context) == "templates/index.html"
    assert source_path("/app/VERSION", context) == "VERSION"
    assert source_path("/etc/passwd", context) is None


def test_changed_text_file_gets_a_diff() -> None:
    e = capture(FileChange("/app/VERSION", "changed"), "VERSION", b"hacked\n", b"v1\n")
    assert e.content == "hacked\n"
    assert e.size == 7
    assert e.diff == "--- a/VERSION\n+++ b/VERSION\n@@ -1 +1 @@\n-v1\n+hacked\n"


def test_binary_and_huge_files_are_kept_without_a_diff() -> None:
    binary = capture(FileChange("x.bin", "changed"), "x.bin", b"\0\1\2", b"old\n")
    assert binary.binary
    assert binary.content is None
    assert binary.diff == ""
    huge = capture(FileChange("big", "changed"), "big", b"a" * (EVIDENCE_BYTES + 1), b"")
    assert huge.truncated
    assert huge.content is not None
    assert len(huge.content) == EVIDENCE_BYTES
    assert huge.diff == ""

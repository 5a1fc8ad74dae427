"""The hardened parser's depth cap is exact: max_depth levels pass, one more is refused."""

from __future__ import annotations

import pytest

from winmdm.errors import HostileInput
from winmdm.protocol import xml


@pytest.mark.parametrize("limit", [1, 5, 48])
def test_depth_cap_is_exact(limit: int) -> None:
    ok = b"<a>" * limit + b"</a>" * limit
    assert xml.local(xml.parse(ok, max_depth=limit)) == "a"
    with pytest.raises(HostileInput, match=f"deeper than {limit}"):
        xml.parse(b"<a>" * (limit + 1) + b"</a>" * (limit + 1), max_depth=limit)


def test_comments_and_text_do_not_count_as_depth() -> None:
    data = b"<a><!-- c --><b>text<c/></b></a>"
    assert xml.local(xml.parse(data, max_depth=3)) == "a"
    with pytest.raises(HostileInput):
        xml.parse(data, max_depth=2)

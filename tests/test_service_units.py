"""Pure pieces of the service: upload names, answer pieces, key roles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.auth import AccessDenied, Action, Gate, Role
from service.settings import ServiceSettings
from service.streaming import answer_pieces
from service.uploads import UploadError, safe_name


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("报告.txt", "报告.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\笔记.md", "笔记.md"),
        ("/abs/path/page.HTML", "page.HTML"),
    ],
)
def test_safe_name_keeps_only_the_base_name(raw: str, name: str) -> None:
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    "raw", [None, "", "..", "dir/", ".env.txt", "a\x00b.txt", "x" * 300 + ".txt", "a.exe"]
)
def test_safe_name_refuses_unusable_names(raw: str | None) -> None:
    with pytest.raises(UploadError):
        safe_name(raw)


@given(st.text())
def test_a_safe_name_never_leaves_its_directory(raw: str) -> None:
    try:
        name = safe_name(raw)
    except UploadError:
        return
    assert "/" not in name and "\\" not in name
    assert not name.startswith(".")


@given(st.text())
def test_answer_pieces_concatenate_to_the_answer(text: str) -> None:
    assert "".join(answer_pieces(text)) == text


def test_answer_pieces_end_at_clause_punctuation() -> None:
    assert answer_pieces("支树平出席会议，并讲话。[1]") == ["支树平出席会议，", "并讲话。", "[1]"]


def test_keys_map_to_their_roles() -> None:
    gate = Gate(ServiceSettings(admin_keys=["a"], query_keys=["q"], publishable_keys=["p"]))

    assert [gate.role_of(k) for k in ("a", "q", "p", "x")] == [
        Role.ADMIN,
        Role.QUERY,
        Role.PUBLISHABLE,
        None,
    ]
    caller = gate.check(Action.SEARCH, "q", None, "http://h", "1.2.3.4")
    assert caller.role is Role.QUERY
    with pytest.raises(AccessDenied) as denied:
        gate.check(Action.MANAGE, "q", None, "http://h", "1.2.3.4")
    assert denied.value.status == 403


def test_comma_separated_keys_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAG_ADMIN_KEYS", "k1, k2")
    monkeypatch.setenv("RAG_ALLOWED_ORIGINS", "https://a.example")

    settings = ServiceSettings()

    assert settings.admin_keys == ["k1", "k2"]
    assert settings.allowed_origins == ["https://a.example"]
    assert not settings.open_access

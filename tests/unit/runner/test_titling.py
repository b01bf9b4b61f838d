"""titling.py: what counts as a title the model gave, and the fallback's."""

from __future__ import annotations

import pytest

from services.runner.titling import MAX_TITLE, clean_title, title_from


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Tomorrow Afternoon Meeting", "Tomorrow Afternoon Meeting"),
        ('  "Tomorrow Afternoon Meeting."  \n', "Tomorrow Afternoon Meeting"),
        ("Title: **Quarterly Report Review**", "Quarterly Report Review"),
        ("# Trip To Lisbon", "Trip To Lisbon"),
        ("“Café Opening Hours”", "Café Opening Hours"),
    ],
)
def test_a_short_answer_is_the_title(answer: str, title: str) -> None:
    assert clean_title(answer) == title


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   ",
        "...",
        "Here is a title:\nTomorrow Afternoon Meeting",  # more than one line
        "A" * (MAX_TITLE + 1),
        "this is a whole sentence that goes on and on well past any title",
    ],
)
def test_nonsense_is_no_title(answer: str) -> None:
    assert clean_title(answer) is None


def test_the_fallback_is_the_first_line_cut_at_a_word() -> None:
    assert title_from("Find me a meeting time for tomorrow afternoon.") == (
        "Find me a meeting time for tomorrow afternoon"
    )
    assert title_from("word " * 40).endswith("…")

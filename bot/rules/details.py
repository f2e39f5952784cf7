"""Which details a problem report still lacks: what a second request for details names.

Asking "could you tell us more?" twice helps nobody; naming what is still missing does.
A short, fixed checklist of what the team needs to act on a problem, each with a cheap
test of whether the conversation so far already gives it. Pure and linear.
"""

from __future__ import annotations

import re

CHECKLIST: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("what you were doing when it happened (the steps, or the page you were on)",
     re.compile(r"\b(click\w*|open\w*|go(ing)? to|went to|tried|try(ing)? to|when i|after i|"
                r"page|screen|button|menu|steps?|settings?|upload\w*|import\w*|export\w*|"
                r"sav(e|ing)|log(ging)? ?in|sign(ing)? ?in)\b", re.I)),
    ("what you see instead (an error message, or a screenshot)",
     re.compile(r"\b(error|message|says|shows?|showing|blank|nothing happens|spins?|"
                r"spinning|freez\w*|crash\w*|screenshot|attached|white|empty|code \d+|"
                r"\d{3})\b", re.I)),
    ("your browser or device",
     re.compile(r"\b(chrome|firefox|safari|edge|opera|brave|browser|windows|mac ?os|macbook|"
                r"mac|linux|iphone|ipad|android|ios|mobile|app|laptop|desktop|pc)\b", re.I)),
    ("since when it happens, and whether every time",
     re.compile(r"\b(since|yesterday|today|this morning|last (week|night|month)|ago|"
                r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|every ?time|always|"
                r"sometimes|started|began|first time|once|twice)\b", re.I)),
)


def missing_details(text: str) -> list[str]:
    """The checklist items that ``text`` (the conversation so far) does not give yet."""
    return [item for item, present in CHECKLIST if not present.search(text)]

"""Template hygiene: Django's {# #} comments end on their own line; one that spans lines
is printed on the page as text (base.html once showed its comment on every page)."""

import re
from pathlib import Path

from django.conf import settings

TEMPLATES = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))
UNCLOSED_COMMENT = re.compile(r"\{#(?:(?!#\}).)*$", re.MULTILINE)


def test_no_template_has_a_comment_spanning_lines():
    assert len(TEMPLATES) > 40
    spanning = {
        str(path.relative_to(settings.BASE_DIR)): line
        for path in TEMPLATES
        for line in path.read_text().splitlines()
        if UNCLOSED_COMMENT.search(line)
    }
    assert spanning == {}

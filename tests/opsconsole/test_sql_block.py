"""The one SQL block (templates/partials/_sql.html), the filters that feed it, and inline facts."""

from django.template.loader import render_to_string

from opsconsole.templatetags.console import confirm_words, fact, statements


def test_it_renders_the_statement_escaped_in_a_collapsible_block():
    html = render_to_string("partials/_sql.html", {"sql": "SELECT 1 WHERE a < 'b'", "lines": 2})

    assert "data-sql-block" in html and "--sql-lines: 2" in html
    assert "SELECT 1 WHERE a &lt; &#x27;b&#x27;" in html
    assert "Show all" in html and "Copy" in html


def test_it_collapses_to_four_lines_unless_told():
    assert "--sql-lines: 4" in render_to_string("partials/_sql.html", {"sql": "SELECT 1"})


def test_it_joins_statements_each_ended_once():
    assert statements(["CREATE TABLE a ()", "DROP TABLE b;"]) == "CREATE TABLE a ();\nDROP TABLE b;"
    assert statements("SELECT 1") == "SELECT 1;"
    assert statements(None) == ""


def test_it_gives_the_confirmation_word_as_json():
    assert confirm_words('idx "x"') == '["idx \\"x\\""]'


def test_an_inline_fact_is_never_a_python_repr():
    assert fact([], "clustering") == "none"
    assert fact(["a", "b"], "clustering") == "a, b"
    assert fact(None, "retention_days") == "—"
    assert fact(False, "require_partition_filter") == "no"
    assert fact(50000, "batch_rows") == "50,000"

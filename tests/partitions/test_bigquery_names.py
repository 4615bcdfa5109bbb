import pytest

from partitions.backends.base import PlanRefused
from partitions.backends.bigquery import COLUMN_RE, TABLE_RE, check, column


@pytest.mark.parametrize("name", ["payments\n", "pay`ments", "a.b", "", "x; DROP TABLE y"])
def test_it_refuses_table_names_that_could_escape_the_backticks(name):
    with pytest.raises(PlanRefused):
        check(TABLE_RE, name, "table name")


def test_it_quotes_a_valid_column_and_refuses_a_trailing_newline():
    assert column("created_at") == "`created_at`"
    with pytest.raises(PlanRefused):
        check(COLUMN_RE, "created_at\n", "column name")

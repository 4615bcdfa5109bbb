"""The workload-wide choice under a budget, bundles (an OR's indexes) taken all or none."""

from partitions.queries import selection

A = ("s", "orders", ("customer_id",))
B = ("s", "orders", ("total",))
C = ("s", "items", ("sku",))
AB = (A, B)


def statement(queryid, calls, before, **cost_with):
    priced = selection.Priced(queryid, calls, before)
    priced.cost_with = {KEYS[name]: cost for name, cost in cost_with.items()}
    return priced


KEYS = {"a": A, "b": B, "c": C, "ab": AB}
SIZES = {A: 100, B: 100, C: 100, AB: 200}


def chosen_keys(statements, budget, sizes=SIZES):
    return [c.key for c in selection.choose(statements, sizes, budget, 0.5)]


def test_it_takes_a_bundle_as_one_candidate():
    statements = [statement(1, 10, 1000.0, a=990.0, b=990.0, ab=20.0)]
    assert chosen_keys(statements, selection.Budget()) == [AB]


def test_a_bundle_counts_each_of_its_indexes_against_the_budget():
    statements = [statement(1, 10, 1000.0, ab=20.0), statement(2, 1, 1000.0, c=10.0)]
    assert chosen_keys(statements, selection.Budget(max_indexes=1)) == [C]
    assert chosen_keys(statements, selection.Budget(max_per_table=1)) == [C]
    assert set(chosen_keys(statements, selection.Budget(max_indexes=3))) == {AB, C}


def test_an_index_taken_alone_is_not_taken_again_in_a_bundle():
    statements = [statement(1, 100, 1000.0, a=10.0), statement(2, 1, 1000.0, ab=20.0)]
    assert chosen_keys(statements, selection.Budget()) == [A]

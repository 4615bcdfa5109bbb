"""Choosing a set of indexes for a whole workload under a budget.

Each candidate index carries, per statement it serves, the statement's planner cost
with it (priced by hypopg). The set is built greedily: at each step the candidate
that saves the most workload cost (calls x cost cut, over what the indexes already
chosen give) per byte of index is taken, as long as it halves (by the margin) some
statement's current cost and fits the budget (indexes in all, per table, total
bytes). Then a chosen index that is a prefix of another chosen one is folded into
the wider one when the wider still gives each of its statements the required cut.

A candidate may be a bundle: indexes that serve a statement only together (an OR across
columns needs a BitmapOr over an index per branch). It is priced, budgeted and taken as
one, all or nothing.
Pure computation: nothing here talks to a database.
"""

from dataclasses import dataclass, field

Key = tuple[str, str, tuple[str, ...]]  # (schema, table, columns)
Bundle = tuple[Key, ...]  # indexes taken together


def members(candidate: "Key | Bundle") -> tuple[Key, ...]:
    """The indexes a candidate stands for: itself, or a bundle's members."""
    return candidate if is_bundle(candidate) else (candidate,)


def is_bundle(candidate) -> bool:
    return isinstance(candidate[0], tuple)


def index_count(taken) -> int:
    return sum(len(members(c)) for c in taken)


@dataclass
class Budget:
    max_indexes: int = 10
    max_per_table: int = 3
    max_total_bytes: int | None = None


@dataclass
class Priced:
    """What the advisor learnt about one statement."""

    queryid: int
    calls: int
    cost_before: float
    cost_with: dict[Key, float] = field(default_factory=dict)


@dataclass
class Chosen:
    key: Key
    size_bytes: int
    serves: dict[int, float] = field(default_factory=dict)  # queryid -> cost after


def choose(
    statements: list[Priced],
    sizes: dict[Key, int],
    budget: Budget,
    margin: float,
    excluded: set[Key] | None = None,
) -> list[Chosen]:
    """The chosen indexes, in the order they were taken, each with the statements it
    serves best among the chosen set."""
    excluded = excluded or set()
    current = {s.queryid: s.cost_before for s in statements}
    taken: list[Key] = []
    while index_count(taken) < budget.max_indexes:
        best = _best_next(statements, sizes, budget, margin, current, taken, excluded)
        if best is None:
            break
        taken.append(best)
        for s in statements:
            if best in s.cost_with:
                current[s.queryid] = min(current[s.queryid], s.cost_with[best])
    taken = _fold_prefixes(statements, taken, margin)
    return _assign(statements, sizes, taken)


def _best_next(statements, sizes, budget, margin, current, taken, excluded) -> Key | None:
    best, best_score = None, 0.0
    used = sum(sizes[k] for k in taken)
    built = {m for k in taken for m in members(k)}
    for key in sizes:
        if key in taken or key in excluded or not _fits(key, sizes, budget, taken, used):
            continue
        if built & set(members(key)):
            continue  # an index already taken, alone or in a bundle: not taken twice
        gain, halves = 0.0, False
        for s in statements:
            after = s.cost_with.get(key)
            if after is None or after >= current[s.queryid]:
                continue
            gain += s.calls * (current[s.queryid] - after)
            halves = halves or after <= current[s.queryid] * (1 - margin)
        score = gain / max(sizes[key], 1)
        if halves and score > best_score:
            best, best_score = key, score
    return best


def _fits(key, sizes, budget: Budget, taken: list, used: int) -> bool:
    if index_count(taken) + len(members(key)) > budget.max_indexes:
        return False
    built = [m for k in taken for m in members(k)]
    for member in members(key):
        on_table = sum(1 for k in built if k[:2] == member[:2])
        new_on_table = sum(1 for m in members(key) if m[:2] == member[:2])
        if on_table + new_on_table > budget.max_per_table:
            return False
    return budget.max_total_bytes is None or used + sizes[key] <= budget.max_total_bytes


def _fold_prefixes(statements: list[Priced], taken: list[Key], margin: float) -> list[Key]:
    """Drop a chosen index whose columns lead a wider chosen one on the same table when
    the wider one gives every statement the narrower serves the required cut."""
    kept = list(taken)
    singles = [k for k in taken if not is_bundle(k)]
    for narrow in sorted(singles, key=lambda k: len(k[2])):
        wider = [
            k
            for k in kept
            if not is_bundle(k)
            and k[:2] == narrow[:2]
            and len(k[2]) > len(narrow[2])
            and k[2][: len(narrow[2])] == narrow[2]
        ]
        for wide in wider:
            served = [s for s in statements if narrow in s.cost_with]
            if all(
                wide in s.cost_with and s.cost_with[wide] <= s.cost_before * (1 - margin)
                for s in served
            ):
                kept.remove(narrow)
                break
    return kept


def _assign(statements: list[Priced], sizes: dict[Key, int], taken: list[Key]) -> list[Chosen]:
    """Give each statement to the chosen index that serves it best; an index left with
    no statement is not worth building."""
    chosen = {key: Chosen(key, sizes[key]) for key in taken}
    for s in statements:
        options = [(s.cost_with[k], i, k) for i, k in enumerate(taken) if k in s.cost_with]
        if options:
            cost, _, key = min(options)
            if cost < s.cost_before:
                chosen[key].serves[s.queryid] = cost
    return [c for c in chosen.values() if c.serves]

"""A cluster that reshards under a running exact analysis: the counts stay exact (the
walk starts over under the new slot layout)."""

import threading

import pytest

from cachemgr.models import KeyspaceAnalysis
from cachemgr.services import analysis
from jobs.models import Run

from .test_slot_moves import MATCHING, MOVED_SLOTS, OTHERS, _load, _owner, migrate_slots

pytestmark = pytest.mark.django_db


class Stop(Exception):
    pass


def test_the_counts_stay_exact_while_slots_move(resharded, monkeypatch):
    cluster = resharded
    source, dest = cluster.nodes[0], cluster.nodes[1]
    _load(cluster).close()
    resharding = threading.Thread(target=migrate_slots, args=(cluster, MOVED_SLOTS, source, dest))
    monkeypatch.setattr(analysis, "CHECKPOINT_EVERY_S", 0.0)  # progress after every step

    def reshard_once_the_walk_is_under_way(row, total):
        if row.keys and resharding.ident is None:
            resharding.start()

    row = analysis.analyze(
        "resharded",
        count=20,
        budget_ms=0,  # one small chunk per step, and a slow pace: the move lands midway
        duty=0.2,
        progress=reshard_once_the_walk_is_under_way,
    )
    resharding.join(timeout=60)

    assert _owner(cluster, MOVED_SLOTS[-1]) == dest.port  # the move did happen
    assert row.status == "complete" and row.passes >= 2
    assert row.keys == MATCHING + OTHERS
    assert row.namespaces["gone"]["keys"] == MATCHING
    assert row.namespaces["kept"]["keys"] == OTHERS
    assert sum(1 for state in row.progress.values() if state["done"]) == 3


def test_a_resumed_analysis_starts_over_when_slots_moved_meanwhile(resharded, monkeypatch):
    cluster = resharded
    source, dest = cluster.nodes[0], cluster.nodes[1]
    _load(cluster).close()
    monkeypatch.setattr(analysis, "CHECKPOINT_EVERY_S", 0.0)
    first = Run.objects.create(kind="cache", name=analysis.JOB_NAME, params={"target": "x"})

    def stop_at_the_first_checkpoint(row, total):
        raise Stop

    with pytest.raises(Stop):
        analysis.analyze("resharded", run=first, progress=stop_at_the_first_checkpoint, count=20)
    stopped = KeyspaceAnalysis.objects.get()
    assert stopped.status == "stopped" and 0 < stopped.keys < MATCHING + OTHERS
    migrate_slots(cluster, range(0, 50), source, dest)  # while it was stopped
    again = Run.objects.create(
        kind="cache", name=analysis.JOB_NAME, params={"target": "x"}, retry_of=first
    )

    row = analysis.analyze("resharded", run=again)

    assert row.pk == stopped.pk and row.status == "complete"
    assert row.keys == MATCHING + OTHERS
    assert row.namespaces["gone"]["keys"] == MATCHING
    assert row.namespaces["kept"]["keys"] == OTHERS

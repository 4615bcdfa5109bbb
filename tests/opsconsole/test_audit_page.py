import csv
import io

from opsconsole import audit


def test_it_filters_by_actor_action_and_target(client_as):
    audit.write("alice", "cache.invalidate_key", "main:user:1")
    audit.write("bob", "cache.invalidate_key", "main:user:2")
    audit.write("alice", "job.start", "table_sync")
    client = client_as("viewer")
    events = client.get("/audit/", {"actor": "alice", "action": "cache."}).context["events"]
    assert [e.target for e in events] == ["main:user:1"]
    events = client.get("/audit/", {"target": "user:2"}).context["events"]
    assert [e.actor_name for e in events] == ["bob"]


def test_it_pages_older_events(client_as):
    for i in range(60):
        audit.write("alice", "x.do", f"t{i}")
    client = client_as("viewer")
    first = client.get("/audit/", {"actor": "alice"})
    assert len(first.context["events"]) == 50
    older = client.get("/audit/", {"actor": "alice", "before": first.context["next_before"]})
    assert [e.target for e in older.context["events"]] == [f"t{i}" for i in range(9, -1, -1)]


def test_a_bad_date_range_is_a_form_error_not_a_crash(client_as):
    response = client_as("viewer").get("/audit/", {"since": "2026-05-02", "until": "2026-05-01"})
    assert response.status_code == 200
    assert b"must not be after" in response.content


def test_it_streams_the_filtered_log_as_csv(client_as):
    audit.write("alice", "cache.warm", "main:user_profile", params={"written": 10})
    audit.write("bob", "job.start", "table_sync")
    response = client_as("viewer").get("/audit/export.csv", {"actor": "alice"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["id", "created_at", "actor_name", "action"]
    assert [(r[2], r[3]) for r in rows[1:]] == [("alice", "cache.warm")]

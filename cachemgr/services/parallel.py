"""Walking every primary at once: one thread per node, the caller's thread in charge.

Pattern invalidation and the exact analysis both step through each primary's keyspace.
The nodes work in parallel, but what they find is handed back to the calling thread
(the run's), which keeps progress, cancellation, checkpoints and the database to itself.
"""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# A walk is called with `report(item)` and a `stop` event it checks between steps.
Walk = Callable[[Callable[[Any], None], threading.Event], None]


def walk_all(walks: list[Walk], on_reports: Callable[[list[Any]], None]) -> None:
    """Run each walk in a thread of its own and call `on_reports` here with whatever they
    reported since its last call (so a slow progress write never lets reports pile up).
    If `on_reports` raises (a cancelled run), the walks are told to stop. A walk's error
    is raised here once every walk has ended."""
    if not walks:
        return
    reports: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work(walk: Walk) -> None:
        try:
            walk(reports.put, stop)
        finally:
            reports.put(None)

    with ThreadPoolExecutor(max_workers=len(walks), thread_name_prefix="walk") as pool:
        futures = [pool.submit(work, walk) for walk in walks]
        try:
            running = len(futures)
            while running:
                batch = [reports.get()]
                while not reports.empty():
                    batch.append(reports.get_nowait())
                running -= batch.count(None)
                if found := [item for item in batch if item is not None]:
                    on_reports(found)
        finally:
            stop.set()
        for future in futures:
            future.result()

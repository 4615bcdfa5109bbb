"""Log filters: what reaches the web log should be worth reading on call."""

import logging


class RefusedRequestsWithoutTraceback(logging.Filter):
    """A refused request (403, 400, 404: the console said no on purpose) is one line:
    Django attaches the exception that produced the refusal, which the handler would
    print as a full traceback for every viewer who opens an operator page. Server
    errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True

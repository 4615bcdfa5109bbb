"""Notifications: admins configure channels (email, signed webhook, Slack), users
subscribe to events, the worker delivers with retries and logs every attempt."""

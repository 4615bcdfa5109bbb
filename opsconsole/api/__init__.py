"""The console's JSON API (django-ninja): the same services, confirmations and audit
as the pages, for scripts holding an API token (docs/team.md)."""

"""Request and response models of the HTTP API, one module per domain; limits that come from the settings or the
served model are `Limit` markers (service/api/limits.py), checked at request time."""

"""Defaults of the bounds on slow and numerous connections (hub.web.server), apart so that the
CLI can show them without importing the web server."""

HEADER_TIMEOUT = 10.0  # seconds to send a request's headers
BODY_IDLE_TIMEOUT = 30.0  # seconds a request body may pause
BODY_TIMEOUT = 600.0  # seconds for a whole body: ten 20 MB scans over a slow county line
LIMIT_CONCURRENCY = 500  # connections per worker process; beyond them 503

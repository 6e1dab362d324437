"""Operating aomd as a service: the parts that face the operator, not the cloud.

``logging`` (one structlog pipeline with redaction), ``metrics`` (Prometheus, private
registry), ``health`` + ``server`` (``/healthz``, ``/readyz``, ``/metrics``), ``sdnotify``
(systemd notify/watchdog) and ``leader`` (Lease-based leader election). Each is small and
independent so the engine wires them and tests exercise them one at a time.
"""

"""The shared kernel every room may import, and which imports no room.

Configuration (``_config``: one TOML file into frozen dataclasses, each key declared
once as a field; ``_config_parse`` the one generic parser, ``_config_checks`` the
value checks fields name), the error tree
(``_errors``: every domain error carries a stable reason code and no transport
status; node.rpc._status maps it to gRPC), time (``_clock``: passed in, never read deep inside the domain), bounds on
caller-chosen input (``_bounds``), key material (``_secrets``), the ID-number guard
for free text (``_freetext``) and structured logs and metrics (``_observe``).

May import: ``keys``, ``scoring``, ``mapping``, ``node.pb``; no other room of ``node``,
and not ``grpc`` (tools/check_imports.py).
"""

__all__: list[str] = []

"""Node: the region node and provincial hub, and the ``huxin`` CLI — a house of rooms.

Each subpackage has one job; its ``__init__`` says what it holds and what it may
import (``tools/check_imports.py`` enforces the rules that can be checked
mechanically; docs/adr/0600-rooms-of-the-node.md draws the map):

* ``core`` — configuration, the error tree, clock, bounds, secrets, logs and metrics;
* ``store`` — the database: migrations, units of work, repositories;
* ``exchange`` — the request's form, mapping for a request, throttle, the query audit (N23);
* ``disclosure`` — consents for scenarios and what an attestation discloses;
* ``catalogue`` — the published incentive catalogue and what recognition unlocks;
* ``population`` — the population registry; ``organisations`` — H10 listings;
* ``monthly`` — the monthly run, published grades, statutory snapshots;
* ``model`` — evaluating and rolling out a scoring model;
* ``rights`` — objections, repair, supplements, opt-out, deregistration;
* ``federation`` — trust list, peers, routing, sync, push, witnessing;
* ``hub`` — the provincial hub;
* ``rpc`` — the gRPC edge: server, guard, servicers, client channels;
* ``cli`` — the command line; ``demo`` — the walk-through and the test harness;
  ``synthetic`` — the synthetic population (demo, evaluation, benchmarks);
* ``pb`` — generated protocol messages.
"""

__all__: list[str] = []

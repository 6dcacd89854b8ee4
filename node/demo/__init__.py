"""``huxin demo`` and the test harness: out of the product's path.

``_main`` runs the walk-through stage by stage (``_intake``, ``_residents``,
``_story``, ``_verify``, ``_population_files``); ``_federation`` lays out a whole
federation on one machine (``huxin init federation``); ``_testbed`` is the
in-process federation integration tests and benchmarks start.

May import every room; no product room imports it.
"""

__all__: list[str] = []

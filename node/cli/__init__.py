"""The ``huxin`` command line: the only place that reads flags and the environment.

``_main`` builds the parser from every command module (``COMMAND_MODULES``) and
maps the error tree to exit codes; each ``_<area>`` module registers its
subcommands.  ``_init`` lays out node directories, ``_progress`` is the batch jobs'
progress bar on stderr.

May import every room of ``node``; nothing but ``node.demo`` imports it.
"""

__all__: list[str] = []

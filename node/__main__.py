"""``python -m node`` is ``huxin``."""

from node.cli._main import main

raise SystemExit(main())

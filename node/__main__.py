"""``python -m node`` is ``huxin``."""

from node._cli import main

raise SystemExit(main())

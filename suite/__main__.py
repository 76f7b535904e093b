"""``python -m suite ...``"""

from __future__ import annotations

from suite.cli import main

raise SystemExit(main())

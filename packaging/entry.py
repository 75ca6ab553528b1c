"""Entry point of the one-file binary (`make binary`): Flowboard, or its embedded database.

`flowboard serve` starts the embedded database as a child process running this same
executable with the hidden first argument `__secantusd__` (flowboard/db/embedded.py):
that process runs SecantusDB's own command line and nothing of Flowboard, so the GPL
database stays a separate program inside the bundle, exactly as `secantusd-py` is
outside it. Flowboard's code never imports it.
"""

from __future__ import annotations

import sys

from flowboard.db.embedded import BUNDLED_DATABASE_ARG
from flowboard.process.launch import die_with_parent


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == BUNDLED_DATABASE_ARG:
        del sys.argv[1]
        die_with_parent()  # spawned without a pre-exec hook (flowboard/process/spawn.py)
        sys.argv[0] = "secantusd-py"
        from secantus.cli import main as database_main  # type: ignore[import-untyped]

        return int(database_main() or 0)
    from flowboard.cli import main as flowboard_main

    return flowboard_main()


if __name__ == "__main__":
    sys.exit(main())

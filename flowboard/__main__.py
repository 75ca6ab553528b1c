from flowboard.cli import main

raise SystemExit(main())

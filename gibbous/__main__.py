from gibbous.cli import main

raise SystemExit(main())

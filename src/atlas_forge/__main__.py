from atlas_forge.cli import main

raise SystemExit(main())

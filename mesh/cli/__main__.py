from lanai.mesh.cli import main

raise SystemExit(main())

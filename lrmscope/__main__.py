from lrmscope.cli.main import main

raise SystemExit(main())

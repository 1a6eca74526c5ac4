from byz_gym.cli import main

raise SystemExit(main())

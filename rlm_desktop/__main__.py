"""`python -m rlm_desktop` is the same as the `rlm-desktop` command."""

from rlm_desktop.cli import main

raise SystemExit(main())

"""The frozen app's entry point: the `rlm-desktop` command (workers start from it too, with
`--repl-worker` / `--ingest-worker`)."""

from rlm_desktop.cli import main

raise SystemExit(main())

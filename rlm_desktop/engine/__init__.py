"""The RLM engine: root loop, REPL worker, model client, budgets and trace (Qt-free)."""

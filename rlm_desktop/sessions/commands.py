"""`rlm-desktop history`, `export` and `replay`: saved investigations from the command line.

Exit status: 0 done, 1 the replay did not reproduce the record, 2 usage (no such
investigation, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rlm_desktop.sessions.investigation import InvestigationSummary
from rlm_desktop.sessions.store import Store, StoreError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _usage(error: Exception) -> int:
    """Say why (a KeyError's message is its argument, not its repr) and exit 2."""
    reason = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"rlm-desktop: {reason}", file=sys.stderr)
    return EXIT_USAGE


def run_history(args: argparse.Namespace) -> int:
    try:
        with Store() as store:
            items = store.history()
    except StoreError as exc:
        return _usage(exc)
    if args.json:
        json.dump({"investigations": [item.to_json() for item in items]}, sys.stdout,
                  ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not items:
        print("No saved investigations.")
        return EXIT_OK
    print(format_history(items))
    return EXIT_OK


def format_history(items: list[InvestigationSummary]) -> str:
    from rlm_desktop.ask import printable
    from rlm_desktop.corpus.document import one_line

    rows = [("ID", "DATE", "STATUS", "COST", "CORPUS", "QUESTION")]
    for item in items:
        rows.append((item.id, time.strftime("%Y-%m-%d %H:%M", time.localtime(item.created)),
                     item.status + item.rerun_label,
                     f"${item.cost_usd:.4f}", one_line(item.corpus, 40),
                     printable(one_line(item.question, 60))))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join([*(row[i].ljust(widths[i]) for i in range(5)), row[5]]).rstrip()
                     for row in rows)


def run_export(args: argparse.Namespace) -> int:
    from rlm_desktop.sessions.export import export, write_report

    try:
        with Store() as store:
            investigation = store.load(store.resolve(args.investigation))
    except (StoreError, KeyError) as exc:
        return _usage(exc)
    text = export(investigation, args.format)
    if not args.output or args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(args.output)
    try:
        write_report(target, text)
    except OSError as exc:
        print(f"rlm-desktop: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"rlm-desktop: wrote {target}", file=sys.stderr)
    return EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    """Rerun an investigation from its recorded responses and say whether it reproduced."""
    from rlm_desktop.sessions.replay import rerun, same_steps

    try:
        with Store() as store:
            original_id = store.resolve(args.investigation)
            original = store.load(original_id)
            new_id, result, nodes = rerun(store, original_id, replay=True,
                                          save=not args.no_save)
    except (StoreError, KeyError) as exc:
        return _usage(exc)
    same = (result.answer == original.answer and result.citations == original.citations
            and same_steps(nodes, original.nodes))
    data = {"investigation": new_id, "replay_of": original_id,
            "reproduced": same and result.status == original.status,
            **result.to_json()}
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
    else:
        verdict = ("reproduced the recorded steps, answer and citations"
                   if data["reproduced"]
                   else f"did NOT reproduce the record (status {result.status}"
                   + (f": {result.error}" if result.error else "") + ")")
        saved = f" (saved as {new_id})" if new_id else ""
        print(f"replay of {original_id}{saved}: {verdict}")
    return EXIT_OK if data["reproduced"] else EXIT_FAILED


def run_resume(args: argparse.Namespace) -> int:
    """Carry on an investigation that was cut short: the record, then the model live."""
    from rlm_desktop.ask import report
    from rlm_desktop.sessions.replay import rerun
    from rlm_desktop.settings import resolve_endpoint

    base_url, api_key = resolve_endpoint(args.base_url, args.api_key)
    try:
        with Store() as store:
            original_id = store.resolve(args.investigation)
            new_id, result, _ = rerun(store, original_id, replay=False, resume=True,
                                      save=not args.no_save, base_url=base_url,
                                      api_key=api_key)
    except (StoreError, KeyError, ValueError) as exc:
        return _usage(exc)
    saved = f" as {new_id}" if new_id else ""
    print(f"rlm-desktop: resumed {original_id}{saved}", file=sys.stderr)
    return report(result, as_json=args.json, investigation=new_id)

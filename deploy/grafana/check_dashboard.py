#!/usr/bin/env python3
"""`just alerts-check`, last step: the Grafana dashboard parses and queries only metrics that
burrow serves; the alerting rules too.

    python3 deploy/grafana/check_dashboard.py [DASHBOARD.json] [--rules RULES.yaml] [--src DIR]

Defaults: deploy/grafana/burrow.json, deploy/prometheus/alerts.yaml, crates/ (paths from the
repository root, which is found from this file's place).

The known metrics are read from the code: every `pub const NAME: &str = "burrow_…"` in a
`*metrics*.rs` file under `crates/*/src/` (crates/worker/src/metrics.rs, crates/api/src/metrics.rs,
crates/shared/src/engine/relay_metrics.rs), with `_bucket`, `_sum` and `_count` for the ones
declared histograms (`describe_histogram!(NAME, …)`), plus `up`, which Prometheus adds itself.

The dashboard must be a JSON object with an integer schemaVersion and panels, each panel (rows'
nested panels included) with a unique id and a gridPos, and each non-row panel with at least one
target; every datasource reference is `${DS_PROMETHEUS}` (the dashboard's input and template
variable). Every metric name in a target's `expr`, in a template variable's query and in a
rule's `expr` must be a known metric. Metric names are what is left of a PromQL expression after
removing string literals, label matchers `{…}`, ranges `[…]`, grouping clauses (`by (…)`,
`on (…)`, …), Grafana variables, numbers, keywords and function names (identifiers followed by
`(`).

Uses only the standard library (PyYAML if present, else a small reader for the rules' `expr:`
entries). Prints what it checked; exits 1 listing every problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DS_UID = "${DS_PROMETHEUS}"
BUILTIN_METRICS = {"up"}

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "atan2", "inf", "nan", "start", "end",
}


def known_metrics(src: Path) -> dict[str, str]:
    """Metric name -> the file that defines it."""
    const_re = re.compile(r'pub\s+const\s+(\w+)\s*:\s*&str\s*=\s*"(burrow_\w+)"')
    hist_re = re.compile(r"describe_histogram!\(\s*(\w+)")
    found: dict[str, str] = {}
    for path in sorted(src.glob("*/src/**/*metrics*.rs")):
        text = path.read_text(encoding="utf-8")
        consts = dict(const_re.findall(text))
        rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        for name in consts.values():
            found[name] = rel
        for const in hist_re.findall(text):
            if const in consts:
                for suffix in ("_bucket", "_sum", "_count"):
                    found[consts[const] + suffix] = rel
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (see the module doc)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\[\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def variable_query_exprs(query: str) -> list[str]:
    """The PromQL inside a Prometheus template-variable query."""
    m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*", query, re.S)
    if m:
        return [m.group(1)]
    m = re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", query)
    if m:
        return []
    m = re.fullmatch(r"\s*(?:query_result|metrics)\((.*)\)\s*", query, re.S)
    if m:
        return [m.group(1)]
    return [query]


def rule_exprs(path: Path) -> list[tuple[str, str]]:
    """(rule name, expr) of every rule in a Prometheus rules file."""
    text = path.read_text(encoding="utf-8")
    try:
        import yaml  # type: ignore
    except ImportError:
        return _rule_exprs_without_yaml(text)
    doc = yaml.safe_load(text) or {}
    out = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            out.append((rule.get("alert") or rule.get("record") or "?", str(rule.get("expr", ""))))
    return out


def _rule_exprs_without_yaml(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    name = "?"
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*-?\s*(alert|record):\s*(\S+)", line)
        if m:
            name = m.group(2)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value[:1] in ("|", ">"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                out.append((name, "\n".join(body)))
                continue
            if value[:1] in ("'", '"') and value[-1:] == value[:1]:
                value = value[1:-1]
            out.append((name, value))
        i += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboard", nargs="?", default=str(ROOT / "deploy/grafana/burrow.json"))
    ap.add_argument("--rules", default=str(ROOT / "deploy/prometheus/alerts.yaml"))
    ap.add_argument("--src", default=str(ROOT / "crates"))
    args = ap.parse_args()

    problems: list[str] = []
    known = known_metrics(Path(args.src))
    if not known:
        print(f"check-dashboard: no metric constants found under {args.src}", file=sys.stderr)
        return 1
    known_all = set(known) | BUILTIN_METRICS
    print(f"known metrics ({len(known)} from the code, plus {', '.join(sorted(BUILTIN_METRICS))}):")
    for name in sorted(known):
        print(f"  {name:42} {known[name]}")

    dashboard_path = Path(args.dashboard)
    try:
        dash = json.loads(dashboard_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        print(f"check-dashboard: {dashboard_path}: {e}", file=sys.stderr)
        return 1

    used: dict[str, int] = {}

    def check_expr(where: str, expr: str) -> None:
        if not expr.strip():
            problems.append(f"{where}: empty expression")
            return
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric in {expr!r}")
        for name in sorted(names):
            used[name] = used.get(name, 0) + 1
            if name not in known_all:
                problems.append(f"{where}: unknown metric {name!r} in {expr!r}")

    def check_ds(where: str, ds: object) -> None:
        uid = ds.get("uid") if isinstance(ds, dict) else ds
        if uid != DS_UID:
            problems.append(f"{where}: datasource {ds!r}, expected uid {DS_UID}")

    if not isinstance(dash, dict):
        problems.append("the dashboard is not a JSON object")
        dash = {}
    if not isinstance(dash.get("schemaVersion"), int):
        problems.append("schemaVersion missing or not an integer")
    if not any(i.get("name") == "DS_PROMETHEUS" for i in dash.get("__inputs", [])):
        problems.append("no DS_PROMETHEUS in __inputs")

    variables = dash.get("templating", {}).get("list", [])
    if not any(v.get("name") == "DS_PROMETHEUS" and v.get("type") == "datasource" for v in variables):
        problems.append("no datasource template variable DS_PROMETHEUS")
    for var in variables:
        if var.get("type") != "query":
            continue
        where = f"variable {var.get('name')}"
        check_ds(where, var.get("datasource"))
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for expr in variable_query_exprs(query):
            check_expr(where, expr)

    def walk(panels: list) -> list:
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    ids: set = set()
    count = 0
    exprs = 0
    for panel in walk(dash.get("panels", [])):
        count += 1
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(panel.get("id"))
        if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
            problems.append(f"{where}: gridPos incomplete")
        if panel.get("type") == "row":
            continue
        check_ds(where, panel.get("datasource"))
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        for t in targets:
            check_ds(f"{where} target {t.get('refId')}", t.get("datasource"))
            check_expr(f"{where} target {t.get('refId')}", t.get("expr", ""))
            exprs += 1
    if not count:
        problems.append("no panels")
    print(f"{dashboard_path.name}: valid JSON, schemaVersion {dash.get('schemaVersion')}, "
          f"{count} panels, {exprs} queries")

    rules_path = Path(args.rules)
    rules = rule_exprs(rules_path)
    for name, expr in rules:
        check_expr(f"{rules_path.name}: {name}", expr)
    print(f"{rules_path.name}: {len(rules)} rules")

    # A histogram's own name selects nothing: its series are _bucket, _sum and _count.
    never = sorted(
        n for n in known
        if n not in used and n + "_bucket" not in known and not n.endswith(("_sum", "_count"))
    )
    print("metrics used:", ", ".join(f"{n} ({c})" for n, c in sorted(used.items())))
    if never:
        print("not used by the dashboard or the rules:", ", ".join(never))

    if problems:
        print(f"\ncheck-dashboard: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("check-dashboard: the dashboard and the rules use only metrics burrow serves")
    return 0


if __name__ == "__main__":
    sys.exit(main())

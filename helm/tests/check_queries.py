#!/usr/bin/env python3
"""Asks a real Prometheus (scraping a running mesh, with files/alerts.yaml loaded) to evaluate
every PromQL query of the shipped dashboards and every recording and alerting rule, and fails
on any error: a typo, a bad label matcher or a function misuse shows here, not on a
dashboard at 3 a.m. Also checks that the rule groups evaluate without error.

Usage: check_queries.py http://127.0.0.1:PORT
"""
import json
import pathlib
import sys
import urllib.parse
import urllib.request

import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent / "reserve-mesh"
# Grafana's built-in variables, as Grafana would fill them for a 1-hour view.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def api(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def dashboard_queries():
    """(where, PromQL) of every Prometheus target of every dashboard."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str) and node["expr"].strip():
                found.append((where, node["expr"]))
            for key, value in node.items():
                walk(value, f"{where} / {node.get('title', key)}" if key == "targets" else where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for path in sorted((CHART / "dashboards").glob("*.json")):
        walk(json.loads(path.read_text()), path.name)
    return found


def main():
    base = sys.argv[1].rstrip("/")
    failures = []
    queries = dashboard_queries()
    rules = [(f"rule {r.get('alert') or r.get('record')}", r["expr"])
             for g in yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
             for r in g["rules"]]
    with_data = 0
    for where, expr in queries + rules:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        try:
            answer = api(base, "/api/v1/query", query=expr)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer.get("status") != "success":
            failures.append(f"{where}: {answer.get('error', answer)}\n    {expr}")
        elif answer["data"]["result"]:
            with_data += 1
    loaded = api(base, "/api/v1/rules")["data"]["groups"]
    evaluated = [r for g in loaded for r in g["rules"]]
    for rule in evaluated:
        if rule.get("health") != "ok":
            failures.append(f"rule {rule['name']}: health {rule.get('health')} {rule.get('lastError', '')}")
    if len(evaluated) != len(rules):
        failures.append(f"Prometheus loaded {len(evaluated)} rules, the file has {len(rules)}")
    for failure in failures:
        print(f"FAIL: {failure}")
    print(f"prometheus: {len(queries)} dashboard queries and {len(rules)} rule expressions evaluated, "
          f"{with_data} with data; {len(evaluated)} rules loaded; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

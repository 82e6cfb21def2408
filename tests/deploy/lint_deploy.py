#!/usr/bin/env python3
"""Lints deploy/ (docs/deployment.md): what can be checked without a container runtime or a
cluster.

  P2PMQ_BIN=build/release/apps/p2pmq/p2pmq python3 tests/deploy/lint_deploy.py

Checks, each reported as ok, skipped (with the reason) or FAIL:
  - every YAML file of deploy/ and config/ parses (python3-yaml), and every JSON file of deploy/;
  - every agent configuration the deploy files use (deploy/config/*.yaml, the k8s ConfigMap's
    entries, config/*.yaml) is accepted by `p2pmq agent --config F --print-config`, and every
    file the compose file, the k8s manifests and the Dockerfile name exists;
  - the k8s containers' `p2pmq agent` command lines are accepted as well;
  - the systemd unit passes `systemd-analyze verify` (ExecStart pointed at P2PMQ_BIN, since the
    unit names the installed path) and its `systemd-analyze security` exposure is low;
  - `docker compose config` accepts the compose file, and `kubectl kustomize` the k8s folder,
    when those clients are present;
  - deploy/runtime-packages.sh names the Debian packages of the binary's libraries.
Exits 1 on any failure, 77 (skipped) when nothing could be checked, else 0.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = os.environ.get("P2PMQ_BIN", "")
# Keys other branches add; a binary without them is checked without those flags (reported).
PENDING_KEYS = ("metrics",)

results = {"ok": 0, "skipped": 0, "failed": 0}


def report(kind, what, detail=""):
    results[kind] += 1
    label = {"ok": "ok", "skipped": "skipped", "failed": "FAIL"}[kind]
    print(f"{label}: {what}" + (f" ({detail})" if detail else ""), flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def have_binary():
    return BIN and os.access(BIN, os.X_OK)


def yaml_files():
    return sorted(list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml")) +
                  list((ROOT / "config").glob("*.yaml")))


def check_yaml(yaml):
    docs = {}
    for path in yaml_files():
        try:
            docs[path] = list(yaml.safe_load_all(path.read_text()))
            report("ok", f"{path.relative_to(ROOT)} parses")
        except yaml.YAMLError as e:
            report("failed", f"{path.relative_to(ROOT)} parses", str(e).replace("\n", " "))
    return docs


def check_json():
    import json
    for path in sorted(DEPLOY.rglob("*.json")):  # the Grafana dashboard
        try:
            json.loads(path.read_text())
            report("ok", f"{path.relative_to(ROOT)} parses")
        except ValueError as e:
            report("failed", f"{path.relative_to(ROOT)} parses", str(e))


def accepted(args):
    """(ok, message) of `p2pmq ARGS --print-config`."""
    r = run([BIN, *args, "--print-config"])
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def drop_pending(args):
    """args without `--set K=V` of keys the binary does not know yet (PENDING_KEYS)."""
    out, dropped = [], []
    i = 0
    while i < len(args):
        if args[i] == "--set" and i + 1 < len(args) and args[i + 1].split(".")[0] in PENDING_KEYS:
            dropped.append(args[i + 1])
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out, dropped


def check_configs(docs, scratch):
    """The agent configurations: files, ConfigMap entries; returns {in-container path: file}."""
    mapped = {}
    for path in sorted((DEPLOY / "config").glob("*.yaml")):
        mapped[f"/etc/p2pmq/{path.name}"] = path
    for path in sorted((ROOT / "config").glob("*.yaml")):
        mapped[f"/usr/local/share/p2pmq/{path.name}"] = path
    for path, items in docs.items():
        for doc in items:
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                for name, text in (doc.get("data") or {}).items():
                    if not name.endswith(".yaml"):
                        continue
                    f = Path(scratch) / f"{doc['metadata']['name']}-{name}"
                    f.write_text(text)
                    mapped[f"/etc/p2pmq/k8s/{name}"] = f
    if not have_binary():
        report("skipped", "agent configurations validated", "P2PMQ_BIN not set or not executable")
        return mapped
    for where, f in sorted(mapped.items()):
        ok, msg = accepted(["agent", "--config", str(f)])
        report("ok" if ok else "failed", f"config {where} accepted by p2pmq", "" if ok else msg)
    return mapped


def check_references(docs, mapped):
    # Compose: the config files its commands name, the Prometheus file it mounts.
    compose = docs.get(DEPLOY / "compose.yaml", [None])[0] or {}
    text = (DEPLOY / "compose.yaml").read_text()
    for ref in sorted(set(re.findall(r"/etc/p2pmq/[\w.-]+\.yaml", text))):
        report("ok" if ref in mapped else "failed", f"compose names {ref}",
               "" if ref in mapped else "no such file in deploy/config")
    for name, svc in (compose.get("services") or {}).items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                exists = (DEPLOY / src).exists()
                report("ok" if exists else "failed", f"compose {name} mounts {src}",
                       "" if exists else "missing")
    # Dockerfile: what it copies from the repository.
    for src in re.findall(r"^COPY (?!--from)(\S+)", (DEPLOY / "Dockerfile").read_text(), re.M):
        exists = (ROOT / src).exists()
        report("ok" if exists else "failed", f"Dockerfile copies {src}", "" if exists else "missing")
    # Kubernetes: the agent command lines of every container.
    for path, items in docs.items():
        if DEPLOY / "k8s" not in path.parents:
            continue
        for doc in items:
            if not isinstance(doc, dict) or doc.get("kind") not in ("StatefulSet", "Deployment",
                                                                     "DaemonSet"):
                continue
            for c in doc["spec"]["template"]["spec"].get("containers", []):
                args = [str(a) for a in c.get("args", [])]
                if c.get("command") or not args or args[0] != "agent":
                    continue
                what = f"k8s {doc['metadata']['name']}/{c['name']} command line"
                args = [str(mapped.get(a, a)) for a in args]
                if not have_binary():
                    report("skipped", what, "no binary")
                    continue
                ok, msg = accepted(args)
                if not ok and any(f"{k}: unknown key" in msg for k in PENDING_KEYS):
                    trimmed, dropped = drop_pending(args)
                    ok, msg = accepted(trimmed)
                    report("ok" if ok else "failed", what,
                           f"without {', '.join(dropped)}: this binary does not know it yet"
                           if ok else msg)
                    continue
                report("ok" if ok else "failed", what, "" if ok else msg)


def check_systemd(scratch):
    unit = DEPLOY / "systemd" / "p2pmq.service"
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        report("skipped", "systemd unit verified", "systemd-analyze not installed")
        return
    if not have_binary():
        report("skipped", "systemd unit verified", "no binary for ExecStart")
        return
    # The unit names the installed path; verify checks that ExecStart exists.
    copy = Path(scratch) / unit.name
    copy.write_text(unit.read_text().replace("/usr/local/bin/p2pmq", BIN))
    r = run([analyze, "verify", str(copy)])
    ok = r.returncode == 0 and not r.stderr.strip()
    report("ok" if ok else "failed", "systemd-analyze verify p2pmq.service",
           "" if ok else (r.stderr or r.stdout).strip())
    r = run([analyze, "security", "--offline=yes", str(copy)])
    m = re.search(r"exposure level for \S+: ([\d.]+)", r.stdout + r.stderr)
    if not m:
        report("skipped", "systemd unit exposure", "this systemd-analyze has no offline security")
        return
    level = float(m.group(1))
    report("ok" if level <= 2.0 else "failed", "systemd-analyze security exposure <= 2.0",
           f"{level}")


def check_compose():
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        if run([*cmd, "version"]).returncode != 0:
            continue
        r = run([*cmd, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"])
        report("ok" if r.returncode == 0 else "failed", f"{' '.join(cmd)} config",
               r.stderr.strip())
        return
    report("skipped", "docker compose config", "no docker compose client on this machine")


def check_kustomize():
    if not shutil.which("kubectl"):
        report("skipped", "kubectl kustomize deploy/k8s", "kubectl not installed")
        return
    r = run(["kubectl", "kustomize", str(DEPLOY / "k8s")])
    ok = r.returncode == 0
    kinds = sorted(set(re.findall(r"^kind: (\w+)", r.stdout, re.M)))
    report("ok" if ok else "failed", "kubectl kustomize deploy/k8s",
           ", ".join(kinds) if ok else r.stderr.strip())


def check_runtime_packages():
    if not have_binary() or not shutil.which("dpkg-query"):
        report("skipped", "runtime-packages.sh", "no binary or no dpkg")
        return
    r = run([str(DEPLOY / "runtime-packages.sh"), BIN])
    pkgs = r.stdout.split()
    ok = r.returncode == 0 and "libc6" in pkgs
    report("ok" if ok else "failed", "runtime-packages.sh names the binary's packages",
           " ".join(pkgs) if ok else r.stderr.strip())


def main():
    try:
        import yaml
    except ImportError:
        print("skipped: python3-yaml is not installed (apt-get install python3-yaml)")
        return 77
    with tempfile.TemporaryDirectory(prefix="p2pmq-lint-") as scratch:
        docs = check_yaml(yaml)
        check_json()
        mapped = check_configs(docs, scratch)
        check_references(docs, mapped)
        check_systemd(scratch)
        check_compose()
        check_kustomize()
        check_runtime_packages()
    print(f"{results['ok']} ok, {results['failed']} failed, {results['skipped']} skipped")
    if results["failed"]:
        return 1
    return 0 if results["ok"] else 77


if __name__ == "__main__":
    sys.exit(main())

"""The Python equivalent of the standard install's dry run: load and merge the site values,
validate them (domain, email, token, placeholders), build the control plane's overrides as the
install guide has them (supervisor environment, hosts, services, generated internal
credentials), and print the JSON plan of the five steps with secrets redacted."""

import json
import re
import secrets
import sys

import yaml

R = "<redacted>"


def deep_merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            deep_merge(a[k], v)
        else:
            a[k] = v
    return a


def main(argv):
    site = {}
    i = 0
    while i < len(argv):
        if argv[i] == "--values":
            with open(argv[i + 1]) as f:
                deep_merge(site, yaml.safe_load(f) or {})
            i += 2
        else:
            i += 1
    problems = []
    domain = site.get("base_domain", "")
    label = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    if len(domain.split(".")) < 2 or not all(label.match(p) for p in domain.split(".")):
        problems.append("base_domain")
    for key in ("dockerhub_token", "github_token"):
        if not site.get(key):
            problems.append(key)
    sup = site.get("supervisor", {})
    if not re.match(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9.-]+\.[a-z]+$", sup.get("email", "")):
        problems.append("supervisor.email")

    def walk(v, path):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else k)
        elif isinstance(v, str) and re.search(r"<[A-Za-z][\w .-]*>", v):
            problems.append(path)

    walk(site, "")
    if problems:
        print("problems: " + ", ".join(problems), file=sys.stderr)
        return 2
    prefix = site.get("file_host_prefix", "file")
    svc = site.get("service_type", "ClusterIP")
    ui = site.get("ui", {})
    flag = lambda b: "true" if b else "false"
    envs = [
        ("CLEARML__services__organization__features__user_management_advanced", flag(ui.get("user_management_advanced", True))),
        ("CLEARML__services__auth__ui_features_per_role__user__show_datasets", flag(ui.get("show_datasets", False))),
        ("CLEARML__services__auth__ui_features_per_role__user__show_orchestration", flag(ui.get("show_orchestration", False))),
        ("CLEARML__services__workers__resource_usages__supervisor_company", sup["tenant_id"]),
        ("CLEARML__secure__credentials__supervisor__role", "system"),
        ("CLEARML__secure__credentials__supervisor__allow_login", "true"),
        ("CLEARML__secure__credentials__supervisor__user_key", R),
        ("CLEARML__secure__credentials__supervisor__user_secret", R),
        ("CLEARML__secure__credentials__supervisor__sec_groups", json.dumps(sup.get("sec_groups", ["users", "admins", "queue_admins"]))),
        ("CLEARML__secure__credentials__supervisor__email", json.dumps(sup["email"])),
        ("CLEARML__apiserver__company__unique_names", flag(site.get("company_unique_names", True))),
    ]
    keys = ["apiserverKey", "apiserverSecret", "fileserverKey", "fileserverSecret",
            "secureAuthTokenSecret", "testUserKey", "testUserSecret"]
    creds = {k: secrets.token_hex(16) for k in keys}
    values = {
        "imageCredentials": {"password": R},
        "clearml": dict({"cookieDomain": domain}, **{k: R for k in creds}),
        "apiserver": {"ingress": {"enabled": True, "hostName": "api." + domain}, "service": {"type": svc},
                      "extraEnvs": [{"name": n, "value": v} for n, v in envs]},
        "fileserver": {"ingress": {"enabled": True, "hostName": prefix + "." + domain}, "service": {"type": svc}},
        "webserver": {"ingress": {"enabled": True, "hostName": "app." + domain}, "service": {"type": svc}},
        "clearmlApplications": {"enabled": site.get("applications_enabled", True)},
    }
    deep_merge(values, site.get("extra_values", {}))
    ns = site.get("namespace", "clearml")
    actions = [
        {"kind": "helm.repo_add", "name": "clearml-enterprise", "url": site.get("chart_repo_url", "https://raw.githubusercontent.com/clearml/clearml-enterprise-helm-charts/gh-pages"), "username": "clearml", "password": R},
        {"kind": "helm.repo_update"},
        {"kind": "kube.ensure_namespace", "name": ns},
        {"kind": "kube.apply", "namespace": ns, "manifest": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "clearml-script-internal-credentials", "namespace": ns}, "stringData": {k: R for k in creds}, "type": "Opaque"}},
        {"kind": "helm.upgrade_install", "release": site.get("release", "clearml"), "chart": "clearml-enterprise/clearml-enterprise", "namespace": ns, "create_namespace": True, "values": values, "wait": True, "timeout": site.get("timeout", "15m"), "rollback_on_failure": False},
    ]
    print(json.dumps({"dry_run": True, "actions": actions}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

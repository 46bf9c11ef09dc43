"""``python -m kvmsandbox.ray [SLOTS]`` prints this node's ``--resources`` JSON:

    ray start --address=HEAD:6379 --resources="$(python -m kvmsandbox.ray)"
"""

from __future__ import annotations

import sys

from .resources import resources_json


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python -m kvmsandbox.ray [SLOTS]", file=sys.stderr)
        return 2
    try:
        slots = int(argv[0]) if argv else None
        print(resources_json(slots))
    except ValueError as e:
        print(f"kvmsandbox.ray: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Print the ten slowest tests of a `make test` run, from the JUnit reports its phases wrote."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(paths: list[str]) -> None:
    timings: list[tuple[float, str]] = []
    for path in paths:
        try:
            root = ET.parse(path).getroot()  # noqa: S314 - written by pytest in this run
        except (OSError, ET.ParseError):
            continue
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            timings.append((float(case.get("time") or 0), name))
    print("ten slowest tests (seconds with setup and teardown: a module's first test carries its shared fixtures):")
    for seconds, name in sorted(timings, reverse=True)[:10]:
        print(f"  {seconds:7.2f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])

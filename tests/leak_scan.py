"""Looking for a secret everywhere it must never be (issue 17, "proof of never").

A secret can leak in other clothes than its own: base64 (in a token, a pickle, a cookie) or
URL-encoded (in a query string). `forms_of` gives every form to look for; base64 depends on the
secret's offset in the surrounding data, so each of the three alignments is looked for, without
the edge characters that depend on the neighbouring bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus


def forms_of(secret: str) -> dict[str, bytes]:
    raw = secret.encode()
    forms: dict[str, bytes] = {"plain": raw, "url-encoded": quote(secret, safe="").encode()}
    forms["url-encoded (+)"] = quote_plus(secret, safe="").encode()
    forms["url-encoded (all)"] = "".join(f"%{b:02X}" for b in raw).encode()
    forms["json \\u escaped"] = "".join(f"\\u{ord(c):04x}" for c in secret).encode()
    for shift in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(raw[shift:]).rstrip(b"=")
            forms[f"{name} (offset {shift})"] = encoded[1:-2]  # the middle: independent of neighbours
    forms["hex"] = raw.hex().encode()
    return forms


@dataclass
class LeakScan:
    """Every secret's forms, and where each was found."""

    secrets: dict[str, str]  # label → value
    looked: list[str] = field(default_factory=list)  # what was scanned, for the report
    found: list[str] = field(default_factory=list)

    def scan(self, where: str, data: bytes | str) -> None:
        blob = data.encode("utf-8", "replace") if isinstance(data, str) else data
        self.looked.append(where)
        lowered = blob.lower()
        for label, secret in self.secrets.items():
            for form, needle in forms_of(secret).items():
                # hex and %XX escapes may be upper or lower case
                hit = needle.lower() in lowered if form in ("hex", "url-encoded (all)") else needle in blob
                if hit:
                    self.found.append(f"{label} as {form} in {where}")

    def scan_tree(self, root: Path, *, skip: tuple[Path, ...] = ()) -> int:
        """Every file under `root` (but `skip`), as bytes; the number of files read."""
        count = 0
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink() or any(path.is_relative_to(s) for s in skip):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            count += 1
            self.scan(str(path), data)
        self.looked.append(f"{count} files under {root}")
        return count

"""The certificate as a printable page (templates/certificate.html, Chinese and English side by side): its style
inline, allowed by its hash alone, so the page loads nothing and runs nothing."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_TEMPLATE = "certificate.html"
STYLE = (TEMPLATES / "certificate.css").read_text(encoding="utf-8")
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

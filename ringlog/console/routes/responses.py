"""How the console answers: the security headers every answer carries, and HTML pages.

Every answer carries ``Cache-Control: no-store`` and a content security policy that allows
this site's own script and style sheet only.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import HTMLResponse

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def html(
    body: str, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """A rendered page, with :data:`SECURITY_HEADERS` (and ``headers``)."""
    merged = {**SECURITY_HEADERS, **(headers or {})}
    return HTMLResponse(body, status_code=status_code, headers=merged)


__all__ = ["SECURITY_HEADERS", "html"]

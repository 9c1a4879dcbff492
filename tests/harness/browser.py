"""Launch flags for Debian's Chromium under Playwright (never a downloaded browser).

The background-networking flags matter: this machine's closed network refuses Chromium's own
connections, many at a time, without them.
"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

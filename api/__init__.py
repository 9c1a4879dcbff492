"""The HTTP API (FastAPI), the WebSocket stream and the web console's static files."""

"""The web UI and JSON API (FastAPI); see the web issue. Empty until then."""

"""The HTTP API: `create_app(settings)` in app.py builds the FastAPI app from one router module per domain."""

"""The tracking app: a Starlette application served by uvicorn (`tracking_app.app:app`, port 8080 under `make dev`)."""

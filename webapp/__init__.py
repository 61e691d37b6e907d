"""The liveness capture service.

`create_app()` builds the Flask application (see `webapp.app`). Importing the package imports no
Flask, so the modules that need none (the Juhe client, the video pipeline, ...) stay free of it.
"""


def create_app(test_config: dict | None = None):
    """Build the Flask app; see `webapp.app.create_app`."""
    from .app import create_app as build
    return build(test_config)

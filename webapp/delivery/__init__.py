"""What leaves the service after a request: signed webhooks and where they may go, Celery
tasks and the broker as the web sees it, and the wake-ups of waiting pages.
Flask-free.
"""

"""crackq's worker: Celery app, tasks, pipeline, CLI (the only package that knows Celery)."""

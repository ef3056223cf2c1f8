"""Field groups that worker.settings.Settings combines; import Settings from there."""

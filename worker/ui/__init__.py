"""The inspector's console (`crackq ui`): review queue, assets and models in a web page."""

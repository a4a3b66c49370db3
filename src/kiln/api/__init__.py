"""The controller's HTTP API (``app``), how it is served (``server``) and the CLI's client."""

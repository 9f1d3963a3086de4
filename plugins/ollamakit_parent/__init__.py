"""The parent-model source: ``from: <name>`` builds on a model already in the store. It runs
last (``trylast``), so a request's files always win over a name."""

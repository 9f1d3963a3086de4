"""The parent-model source: ``from: <name>`` builds on a model already in the store. It runs
first (``tryfirst``): a request naming both a model and files builds on the model and ignores
the files, as Ollama's create does (``server/create.go`` checks ``From`` before ``Files``)."""

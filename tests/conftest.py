pytest_plugins = ["ollamakit.testing.fixtures"]

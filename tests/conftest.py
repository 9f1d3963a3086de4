pytest_plugins = ["ollamakit.testing.fixtures", "ollamakit_s3store.testing"]

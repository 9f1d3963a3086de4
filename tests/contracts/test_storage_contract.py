"""Every installed storage driver (fs, s3 on a test S3 server, the acme example, any other) passes the
storage contract."""

from ollamakit import drivers
from ollamakit.testing.contracts import StorageContract


class TestStorage(StorageContract):
    pass


def test_the_contract_covers_the_drivers_we_ship():
    # If the example plugin is not installed, the suite above silently shrinks: refuse that.
    assert {"fs", "s3", "acme"} <= set(drivers.driver_names("storage"))

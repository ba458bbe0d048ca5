import pytest

from tests.replication_pair import replication_pair


@pytest.fixture(scope="module")
def pair():
    """A scratch primary and its streaming standby, shared by a module (each test leaves it streaming)."""
    with replication_pair() as built:
        yield built

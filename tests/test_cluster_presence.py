"""`flowboard serve` refuses to start beside another server when its local media is its own."""

from __future__ import annotations

import pytest

from tests.servers.cluster import Cluster


def test_a_second_server_with_its_own_media_is_refused_and_a_shared_one_starts(
    cluster: Cluster,
) -> None:
    cluster.shared_media = False
    (first,) = cluster.start(1)
    with pytest.raises(RuntimeError, match="exited") as refused:
        cluster.start(1)
    assert "another Flowboard server" in str(refused.value)
    assert "storage.shared_media = true" in str(refused.value)
    first.stop()
    first.start()  # the same server again (its host and data directory): not another
    cluster.shared_media = True
    (second,) = cluster.start(1)
    assert second.process is not None and second.process.poll() is None


def test_the_same_server_restarted_after_kill_9_is_not_refused(cluster: Cluster) -> None:
    cluster.shared_media = False
    (server,) = cluster.start(1)
    assert server.process is not None
    server.process.kill()  # its row stays fresh for a while
    server.process.wait()
    server.start()
    assert server.process is not None and server.process.poll() is None

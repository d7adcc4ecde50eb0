"""A fabric inside an MPI job: some ranks host partitions, the others use them.

Example (run with ``mpiexec -n 4 python script.py``)::

    from mpi4py import MPI
    import mofka_py.mpi

    with mofka_py.mpi.fabric(MPI.COMM_WORLD, servers=1) as fab:
        if fab is not None:                     # None on server-only ranks
            if fab.comm.rank == 0:
                fab.create_topic("frames", partitions=4)
            fab.comm.Barrier()
            topic = fab.topic("frames")
            ...

Every rank of ``comm`` must enter and leave the block (it is collective).
Server ranks run the broker and an MPI progress thread; unless ``colocated``
they get ``None`` and run the block too while the thread serves, then wait at
the end of the block until every client rank has left. So the application's
own collectives on ``comm`` (a ``Barrier``, an ``Allreduce``) work inside the
block on every rank. Client ranks get a :class:`MpiFabric`, which has the API
of :class:`mofka_py.Fabric` plus ``comm``, a communicator of the client ranks
only (for collectives among the ranks that use the fabric).

Placement: every server holds each topic's metadata; partition ``p`` of topic
``t`` stores its events on server number ``(p + fnv1a(t)) % nservers`` (of the
sorted server ranks), so a topic with more partitions than servers uses them
all. The server of partition 0 coordinates the topic's consumer groups,
committed offsets and completion. :meth:`MpiFabric.partition_servers` tells
where each partition lives.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Sequence, Union

from . import _core, _settings
from .api import DEFAULT_MAX_EVENT_BYTES, Fabric, reserve_memory
from .errors import Error, InvalidArgument

__all__ = ["fabric", "MpiFabric"]


class MpiFabric(Fabric):
    """The fabric of a client rank: a :class:`mofka_py.Fabric` plus the client communicator."""

    def __init__(self, native: Any, transport: Any, comm: Any):
        super().__init__(native)
        self._transport = transport
        #: mpi4py communicator of the client ranks (for the application's own collectives).
        self.comm = comm

    @property
    def is_server(self) -> bool:
        """Whether this rank also hosts partitions (colocated mode)."""
        return bool(self._transport.is_server)

    @property
    def servers(self) -> list:
        """The server ranks (in the communicator given to :func:`fabric`), sorted."""
        return list(self._transport.servers)

    def partition_servers(self, topic: str) -> list:
        """The server rank storing each partition of ``topic`` (index = partition)."""
        n = self.topic(topic).partitions
        return [self._transport.partition_server(topic, p) for p in range(n)]


def _server_ranks(servers: Union[int, Sequence[int]], size: int) -> list:
    if isinstance(servers, bool):
        raise InvalidArgument("servers must be a count or a list of ranks")
    if isinstance(servers, int):
        if not 1 <= servers <= size:
            raise InvalidArgument(f"servers must be between 1 and the communicator size {size} (got {servers})")
        return list(range(servers))
    ranks = sorted({int(r) for r in servers})
    if not ranks or ranks[0] < 0 or ranks[-1] >= size:
        raise InvalidArgument(f"server ranks must be a non-empty list of ranks in [0, {size}) (got {list(servers)!r})")
    return ranks


@contextlib.contextmanager
def fabric(comm: Any = None, servers: Union[int, Sequence[int]] = 1, storage: str = "memory://", *,
           colocated: bool = False, request_timeout_ms: int = 60000, sync: str = "none",
           sync_interval_ms: int = 1000, segment_bytes: int = 256 << 20, retention_bytes: int = 0,
           retention_ms: int = 0, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
           repair: bool = False, memory_reserve: int = 0,
           spindown_ms: float = 10.0, **deprecated: Any) -> Iterator[Optional[MpiFabric]]:
    """Collectively turn ranks of ``comm`` into a fabric (a context manager).

    ``comm``: an mpi4py communicator (default ``MPI.COMM_WORLD``); it is
    duplicated, so the application's own messages never mix with the fabric's.
    ``servers``: a count (ranks ``0..servers-1``) or a list of ranks.
    ``storage``: ``memory://`` or ``file:///dir`` (server rank r uses
    ``dir/rank<r>``). ``colocated=True`` makes server ranks clients too.
    ``request_timeout_ms``: how long a request may go unanswered before it raises
    :class:`mofka_py.TimeoutError` (``request_timeout``, in seconds, is its deprecated
    name). ``memory_reserve``: bytes each server rank
    pre-faults before serving (``memory://`` only; see
    :func:`mofka_py.reserve_memory`), so large events are stored at transport
    speed instead of waiting on page faults. ``spindown_ms``: after events
    went through a rank, its pollers keep polling (yielding the core, never
    sleeping) this long, so the next event of a stream is seen at once; past
    it they sleep up to 250 us between polls and an idle rank costs a few
    percent of a core (0: sleep as soon as idle, lowest CPU, higher latency;
    use a small value on ranks that also compute, e.g. with ``colocated``).
    The other keywords are topic defaults, as in :func:`mofka_py.connect`; every
    setting is in docs/configuration.md. The settings are checked, as
    :func:`mofka_py.connect` checks them, on every rank before any collective.

    >>> with fabric(servers=1) as fab:        # doctest: +SKIP
    ...     if fab is not None:
    ...         fab.create_topic("t")
    """
    if not _core.build_info.get("mpi"):
        raise Error("this mofka-py was built without MPI (no MPI was found when it was compiled), so "
                    "mofka_py.mpi is not available. Rebuild it with an MPI visible: MPI_HOME=<MPI prefix>, a loaded "
                    "MPI module, or `pip install mpich mpi4py` then `pip install --no-build-isolation mofka-py`; "
                    "`mofka-py doctor` shows what a build has")
    values = dict(colocated=colocated, request_timeout_ms=request_timeout_ms, sync=sync,
                  sync_interval_ms=sync_interval_ms, segment_bytes=segment_bytes, retention_bytes=retention_bytes,
                  retention_ms=retention_ms, max_event_bytes=max_event_bytes, repair=repair,
                  memory_reserve=memory_reserve, spindown_ms=spindown_ms)
    if deprecated:
        # contextmanager: the warning points at the `with` line (fabric() -> __enter__ -> here).
        _settings.take_deprecated("mpi", deprecated, values, api="mofka_py.mpi.fabric", stacklevel=5)
    cfg = _settings.validate("mpi", values)
    if not isinstance(storage, str):
        raise InvalidArgument(f"storage must be a URL string, not {type(storage).__name__}")
    if cfg["memory_reserve"] and not storage.startswith("memory://"):
        raise InvalidArgument("memory_reserve applies to memory:// storage; drop it for file:// storage")
    from mpi4py import MPI

    if comm is None:
        comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    ranks = _server_ranks(servers, size)
    if cfg["memory_reserve"] and rank in ranks:
        reserve_memory(cfg["memory_reserve"])
    is_client = cfg["colocated"] or rank not in ranks
    client_comm = comm.Split(0 if is_client else MPI.UNDEFINED, rank)
    try:
        native = _settings.core_mpi_fabric(comm, ranks, storage, cfg)
    except BaseException:
        if client_comm != MPI.COMM_NULL:
            client_comm.Free()
        raise
    try:
        if native.is_client:
            fab = MpiFabric(native.fabric(), native, client_comm)
            try:
                yield fab
            finally:
                fab.close()
        else:
            # The server's progress thread serves while this rank runs the block (an application
            # collective on `comm` in there would hang if this rank waited here first).
            try:
                yield None
            finally:
                while not native.wait_served(100):  # slices, so Ctrl-C gets through
                    pass
    finally:
        native.close()
        if client_comm != MPI.COMM_NULL:
            client_comm.Free()

"""The Diaspora Stream API on mofka-py: a Diaspora program runs here with one import changed.

``from diaspora_stream.api import Driver, ...`` becomes ``from mofka_py.diaspora import
Driver, ...`` (or ``from mofka_py.diaspora.api import ...``). The ``"mofka_py"`` backend
takes a fabric URL (``tcp://``, ``file://``, ``memory://``) or an open fabric (MPI),
the ``"files"`` backend a ``root_path``. What differs from Diaspora's own backends is
listed in docs/diaspora-migration.md.

>>> from mofka_py.diaspora import Driver
>>> driver = Driver(backend="mofka_py", options={"url": "memory://"})
>>> driver.create_topic("events")
>>> producer = driver.open_topic("events").producer()
>>> producer.push(metadata={"x": 1}, data=b"abc").wait(-1)
0
>>> consumer = driver.open_topic("events").consumer("reader")
>>> event = consumer.pull().wait(-1)
>>> event.metadata, bytes(event.data[0])
({'x': 1}, b'abc')
"""
from __future__ import annotations

from .api import *  # noqa: F403 - the names of diaspora_stream.api, listed in api.__all__
from .api import __all__  # noqa: F401

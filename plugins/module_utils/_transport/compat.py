# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""urllib3, when it is installed: the one place the transport imports it from.

The import sanity test (and a controller without urllib3) must still be able to import every
module of the collection: without urllib3 the names below are placeholders (``None``, and
``object`` for the classes the transport subclasses) and :data:`HAS_URLLIB3` is False.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

HAS_URLLIB3: bool

if TYPE_CHECKING:
    # the types: urllib3's own (the client refuses to start without it, HAS_URLLIB3 False)
    import urllib3
    from urllib3 import exceptions as u3exc
    from urllib3 import PoolManager as U3PoolManager
    from urllib3 import ProxyManager as U3ProxyManager
    from urllib3.connection import HTTPConnection as U3HTTPConnection
    from urllib3.connection import HTTPSConnection as U3HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool as U3HTTPPool
    from urllib3.connectionpool import HTTPSConnectionPool as U3HTTPSPool
    from urllib3.util import Retry
    from urllib3.util import Timeout
else:
    try:
        import urllib3
        from urllib3 import exceptions as u3exc
        from urllib3 import PoolManager as U3PoolManager
        from urllib3 import ProxyManager as U3ProxyManager
        from urllib3.connection import HTTPConnection as U3HTTPConnection
        from urllib3.connection import HTTPSConnection as U3HTTPSConnection
        from urllib3.connectionpool import HTTPConnectionPool as U3HTTPPool
        from urllib3.connectionpool import HTTPSConnectionPool as U3HTTPSPool
        from urllib3.util import Retry
        from urllib3.util import Timeout
    except ImportError:
        # the import sanity test (and a controller without urllib3) must still be able to import this file:
        # the pure protocol functions work; the agent client refuses to start with a clear error
        urllib3 = u3exc = Retry = Timeout = None
        U3PoolManager = U3ProxyManager = U3HTTPConnection = U3HTTPSConnection = U3HTTPPool = U3HTTPSPool = object
        HAS_URLLIB3 = False
    else:
        HAS_URLLIB3 = True

__all__ = ["HAS_URLLIB3", "Retry", "Timeout", "U3HTTPConnection", "U3HTTPPool", "U3HTTPSConnection", "U3HTTPSPool",
           "U3PoolManager", "U3ProxyManager", "u3exc", "urllib3"]

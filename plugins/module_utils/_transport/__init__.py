# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP transport of the agent client (urllib3); the agent protocol itself is ``_protocol.py``.

Modules:

* :mod:`.client` - :class:`HTTPClient`: TLS, proxies, plain-http refusal, retries, deadlines, body cap
* :mod:`.compat` - urllib3 when installed (placeholders when not: the import sanity test)
* :mod:`.errors` - :class:`TransportError` (kind, sent) and what an exception out of urllib3 means
* :mod:`.pools` - tracked connections, connection pools bounded per client, the deadline watchdog
"""

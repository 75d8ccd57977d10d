"""The Redis boundary: every command, connection and script of the library goes through here.

- ``connect.py``: the data client from a URL, with the library's timeouts and retry budget;
- ``store.py``: one deadline and one error table (``errors.py``) for every call,
  the auto-pipeline (``pipeline.py``) and the script registry (``scripts.py``);
- ``v1_store.py``, ``node_store.py``, ``schedule.py``: the commands of each layout,
  returning the typed values of ``replies.py``;
- ``links.py``: side connections (``listener.py``: the events channel and keyspace
  events; ``tracking.py``: the local cache's invalidation links), their heartbeat
  and their reconnection; ``dbmark.py``: the local cache's database check (``SWAPDB``);
- ``memory.py``: the server's ``maxmemory-policy`` (the warning at open).
"""

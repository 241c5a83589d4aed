"""Several console nodes: what crosses them through Redis.

One console process is the default and needs none of this: its event bus is
in-process (``deskside.console.events.LocalEventBus``) and presence lives in its
database. With ``[cluster] redis_url`` set (``DESKSIDE_REDIS_URL``), each node
shares PostgreSQL (the source of truth) and one Redis with the others:

* ``bus.RedisEventBus``: domain events published after their commit on one node
  reach the subscribers of every node, through one Redis pub/sub channel.
* ``registry.PresenceRegistry``: which node holds which agent. A node's claims
  live as long as the node's own key, renewed every second; a node that dies
  (``kill -9``) loses them within ``claim_ttl`` seconds and another node records
  its devices offline.
* ``settings.ClusterSettings``: the ``[cluster]`` table.

Not here yet: routing commands, terminals and screens between the node that
holds an agent and the node that holds its technician, and one-at-a-time work
(dispatchers, timers) shared between nodes.
"""

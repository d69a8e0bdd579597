"""The reference LogFleet edge agent: plain Python, no Django.

    logfleet-agent --server http://localhost:8080 --api-key lf_... --name store-01 \\
        --source nginx=/var/log/nginx/access.log

It registers, heartbeats, syncs metric configs, tails its log files, extracts metrics with the
server's own engine (metrics.engine), pushes them in batches that survive outages (an on-disk
queue, replayed with their batch_id), and streams raw lines while someone is watching. Heartbeats
and lines go over its WebSocket while it is open (websocket.py), over HTTP otherwise.

It imports nothing of the server but metrics.engine, so it ships on its own: `make agent-package`
builds it as a wheel (pyproject.toml) with the console script `logfleet-agent`; from the
repository, `python -m edge.agent` runs the same.
"""

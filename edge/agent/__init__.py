"""The reference LogFleet edge agent: plain Python, no Django.

    python -m edge.agent --server http://localhost:8080 --api-key lf_... --name store-01 \\
        --source nginx=/var/log/nginx/access.log

It registers, heartbeats, syncs metric configs, tails its log files, extracts metrics with the
server's own engine (metrics.engine), pushes them in batches that survive outages (an on-disk
queue, replayed with their batch_id), and streams raw lines while someone is watching.
"""

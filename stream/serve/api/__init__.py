"""The pipeline's HTTP side, served by the supervisor on `metrics.bind`.

- server.py: uvicorn in a thread, with read/idle timeouts, a backlog and a
  connection cap;
- app.py: the ASGI application, assembled from the routers below;
- probes.py: /metrics, /healthz, /livez (meaning unchanged, never authenticated).
"""

"""The pipeline's HTTP side, served by the supervisor on `metrics.bind`.

- server.py: uvicorn in a thread, with read/idle timeouts, a backlog and a
  connection cap;
- app.py: the ASGI application, assembled from the routers below;
- probes.py: /metrics, /healthz, /livez (meaning unchanged, never authenticated);
- streams.py: the stream API (GET, POST, PUT, DELETE /streams), OpenAPI at
  /openapi.json;
- changes.py, overlay.py: an API change is written to the state file and applied
  through the same reload as SIGHUP;
- auth.py: bearer tokens from `api.token_file`, and the live view's session cookie;
- tap.py: the forwarder's results, kept per stream and fanned out to watchers;
- views.py: what the API says about a stream;
- live.py, preview.py, static/: the live page, its event stream and MJPEG previews.
"""

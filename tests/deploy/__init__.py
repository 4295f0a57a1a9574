"""What deploy/ ships: manifests, images, alerts and dashboards, and pipelines behind a
proxy and a real Prometheus."""

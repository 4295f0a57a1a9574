"""AdaFocus for live video: pure-PyTorch models, online inference, training and
evaluation. Imports nothing from `stream`, ZeroMQ or Prometheus."""

"""One component with its real surroundings: processes, sockets, files, an RTSP camera."""

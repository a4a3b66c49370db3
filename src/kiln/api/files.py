"""The files a running controller keeps in the state directory."""

SOCKET = "controller.sock"  # the API, private to the state directory's owner
TOKEN = "controller.token"  # a token for the CLI, replaced at every start
LOCK = "controller.lock"  # flock'd while a controller runs; holds its pid

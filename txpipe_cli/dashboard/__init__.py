"""The analysts' dashboard: a static page (static/) and the server that serves it with a JSON API."""

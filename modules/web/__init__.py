"""The web front: pages and static files served at `/`, a client of the public JSON API only."""

"""What operators watch: Prometheus metrics (metrics.py) and readiness checks (health.py)."""

"""What every web surface shares: the routing table with its declared resources (routing.py) and
request helpers (forms.py). Below surfaces/ and console/, so neither needs the other for these."""

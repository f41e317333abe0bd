"""Default values, importable from anywhere (no imports: provider discovery reads them)."""

DEFAULT_CONN_ID = "engagelab_default"
DEFAULT_HOST = "https://ma-api.engagelab.com"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_RETRY_WAIT = 60.0
DEFAULT_MAX_CONCURRENT_REQUESTS = 4

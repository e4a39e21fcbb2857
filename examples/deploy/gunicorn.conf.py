"""gunicorn settings for one face of breezy_janitor_store.

    BZR_STORE_PATH=/srv/bzr BZR_STORE_FACE=public \\
        gunicorn -c gunicorn.conf.py breezy_janitor_store.wsgi:application

Threaded workers: a smart request blocks on the disk and on its client, and
a push or branch keeps its thread for its whole length.  Every setting can
be overridden on the command line.
"""

import multiprocessing
import os

_face = os.environ.get("BZR_STORE_FACE", "admin")

#: Loopback, behind nginx (nginx-janitor-store.conf): admin 9929, public 9930.
bind = os.environ.get(
    "GUNICORN_BIND", "127.0.0.1:9929" if _face == "admin" else "127.0.0.1:9930"
)
#: One process per core: a process uses one core at most.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
#: Concurrent requests per process (each holds a thread while it streams).
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
#: gthread: seconds a worker may stay silent to its arbiter (not a request
#: deadline; long pushes are fine).
timeout = 120
#: Seconds a kept-alive connection may idle (nginx keeps upstream ones).
keepalive = 75
#: On SIGTERM/SIGHUP, seconds for requests in flight to finish.
graceful_timeout = 30
#: Restart a worker after this many requests (plus jitter), bounding memory.
max_requests = 20000
max_requests_jitter = 2000
#: Request line and headers: the store's own limits are the same.
limit_request_line = 8190
limit_request_fields = 100
#: nginx sends the client's address and its request id; the store believes
#: them from the addresses in FORWARDED_ALLOW_IPS (none if unset), and so
#: does gunicorn (for X-Forwarded-Proto): one list for both.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
#: Access lines come from the store (common log format, with the worker's
#: name); gunicorn logs only its own messages.
accesslog = None
errorlog = "-"
loglevel = "info"
#: gunicorn's own lines (the arbiter's too) in the store's format:
#: BZR_STORE_LOG_FORMAT, text or json.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "store": {
            "()": "breezy_janitor_store.web.logs.formatter",
            "name": os.environ.get("BZR_STORE_LOG_FORMAT", "text"),
        }
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "store",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False}
    },
    # the store gives the root logger its handler in each worker
    "root": {"level": "WARNING", "handlers": []},
}
proc_name = f"janitor-store-{_face}"


def child_exit(server, worker):
    """Drop a dead worker's Prometheus values (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

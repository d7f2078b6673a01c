"""Comparison subject written for the Tally benchmark -- not part of Tally.

A reproduction of the seed article's counter service: Flask in front of Redis,
one INCR per request. bench/run.sh runs it under gunicorn against a private
redis-server and measures POST /counters/<name>/increment with wrk.

Redis address: REDIS_HOST (default 127.0.0.1) and REDIS_PORT (default 6379).
"""

import os

import redis
from flask import Flask, jsonify

app = Flask(__name__)

# One pool per worker process; redis-py's client is thread-safe, so gthread
# workers share it.
r = redis.Redis(
    host=os.environ.get("REDIS_HOST", "127.0.0.1"),
    port=int(os.environ.get("REDIS_PORT", "6379")),
)


@app.post("/counters/<name>/increment")
def increment(name):
    value = r.incr(name)
    return jsonify(name=name, value=value)


@app.get("/counters/<name>")
def get(name):
    value = r.get(name)
    return jsonify(name=name, value=int(value or 0))

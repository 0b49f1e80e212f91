"""The Flask app of `make bench-apps`' second table: the hello route of Flask's quickstart. Not part of OServer."""

from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "Hello, World!"

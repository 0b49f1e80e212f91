"""A Flask application that tests/integration/test_mounts.py mounts as a WSGI app (not a package module)."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/hello/<name>")
def hello(name):
    return f"hello {name} from flask\n"


@app.post("/json")
def post_json():
    data = request.get_json()
    return jsonify(received=data, script_root=request.script_root, path=request.path)


@app.post("/form")
def post_form():
    return jsonify(form=request.form.to_dict())

"""Mount loading and routing (oserver/mounts.py) and the PEP 3333 adapter (oserver/wsgi.py), without sockets."""

import io
import sys
import textwrap

import pytest

from oserver.config import build_config
from oserver.apps import wsgi
from oserver.apps.handlers import HandlerRequest
from oserver.apps.mounts import Mount, MountError, MountTable, calling_convention, load_mounts
from oserver.apps.wsgi import FileWrapper, WsgiApp
from oserver.memo import Memo
from oserver.http.parser import HttpError, Request


def table(*prefixes):
    return MountTable([Mount(prefix, f"m:{i}", None, "handler") for i, prefix in enumerate(prefixes)])


def routed_prefix(mounts, raw_path):
    route = mounts.route(raw_path)
    return None if route is None else route.mount.prefix


# ---------------------------------------------------------------- routing

@pytest.mark.parametrize("raw_path, prefix", [
    ("/api", "/api"), ("/api/", "/api"), ("/api/items/3", "/api"), ("/apix", None), ("/ap", None),
    ("/api/v2/x", "/api/v2"), ("/api/v2", "/api/v2"), ("/api/v20", "/api"), ("/%61pi/x", "/api"),
    ("/static/../api/x", "/api"), ("//api//x", "/api"), ("/api/../x", None), ("/", None),
])
def test_longest_prefix_of_the_normalised_path_wins(raw_path, prefix):
    assert routed_prefix(table("/api", "/api/v2"), raw_path) == prefix


def test_route_splits_the_path_below_the_prefix():
    route = table("/api").route("/api/a%20b/")
    assert (route.path, route.path_info) == ("/api/a b/", "/a b/")


def test_root_mount_takes_every_path():
    route = table("").route("/any/thing")
    assert (route.mount.prefix, route.path_info) == ("", "/any/thing")


def test_path_climbing_above_the_root_is_400():
    with pytest.raises(HttpError) as caught:
        table("/api").route("/../api")
    assert caught.value.status == 400


def test_asterisk_form_is_never_routed():
    assert table("").route(None) is None


def test_routes_are_cached_per_raw_path():
    mounts = table("/api")
    assert mounts.route("/api/x") is mounts.route("/api/x")


# ---------------------------------------------------------------- loading

@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A directory of importable modules: modules(name, source) writes one."""
    monkeypatch.setattr(sys, "path", list(sys.path))

    def write(name, source):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        return str(tmp_path)

    yield write
    for name in [p.stem for p in tmp_path.glob("*.py")]:
        sys.modules.pop(name, None)


def config_with(tmp_path, directory, mounts):
    return build_config(overrides={"root": str(tmp_path), "python_path": [directory], "mount": mounts})


def test_handler_and_wsgi_app_are_told_apart_by_their_arguments(tmp_path, modules):
    directory = modules("both", """
        def handle(request): pass
        def app(environ, start_response): pass
    """)
    loaded = load_mounts(config_with(tmp_path, directory, {"/h": "both:handle", "/w/": "both:app"}))
    kinds = {m.prefix: (m.kind, type(m.handler).__name__) for m in loaded.mounts}
    assert kinds == {"/h": ("handler", "function"), "/w": ("WSGI app", "WsgiApp")}


def test_dotted_attribute_is_followed(tmp_path, modules):
    directory = modules("holder", """
        class api:
            @staticmethod
            def handle(request): pass
    """)
    assert load_mounts(config_with(tmp_path, directory, {"/a": "holder:api.handle"})).mounts[0].kind == "handler"


@pytest.mark.parametrize("source, spec, message", [
    ("x = 1", "missing_module_xyz:app", "cannot import missing_module_xyz"),
    ("def handle(request): pass", "broken:nothing", "has no nothing"),
    ("x = 1", "broken:x", "must be a callable"),
    ("def three(a, b, c): pass", "broken:three", "must be a callable"),
    ("raise RuntimeError('at import')", "broken:x", "RuntimeError: at import"),
    ("def (:", "broken:x", "SyntaxError"),
])
def test_mount_that_cannot_load_names_itself_and_the_reason(tmp_path, modules, source, spec, message):
    directory = modules("broken", source)
    with pytest.raises(MountError) as caught:
        load_mounts(config_with(tmp_path, directory, {"/b": spec}))
    assert "/b" in str(caught.value) and message in str(caught.value)


def test_nothing_mounted_loads_nothing(tmp_path):
    assert load_mounts(build_config(overrides={"root": str(tmp_path)})) is None


@pytest.mark.parametrize("target, kind", [
    (lambda request: None, "handler"), (lambda environ, start_response, extra=1: None, "WSGI app"),
    (print, None), (lambda: None, None), ("not callable", None),
])
def test_calling_convention(target, kind):
    assert calling_convention(target) == kind


# ---------------------------------------------------------------- WSGI

def wsgi_request(method="POST", target="/app/a%20b?x=1", body=b"data", headers=None):
    headers = {"host": "example.org", "content-type": "text/plain", "content-length": str(len(body)),
               "x-custom": "v", "x_spoof": "s", **(headers or {})}
    path, _, query = target.partition("?")
    request = Request(method, target, path, query, "HTTP/1.1", headers, True, len(body), b"")
    route = table("/app").route(path)
    return HandlerRequest(request, route, ("10.0.0.1", 5555), ("127.0.0.1", 8080), body)


def run_app(app, handler_request=None):
    status, headers, body = WsgiApp(app)(handler_request or wsgi_request())
    return status, headers, b"".join(body) if not hasattr(body, "fileno") else body


def test_environ_carries_the_request():
    seen = {}

    def app(environ, start_response):
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("200 OK", [])
        return []

    run_app(app)
    assert {k: seen[k] for k in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                                 "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
                                 "REMOTE_PORT", "HTTP_HOST", "HTTP_X_CUSTOM", "RAW_URI", "body")} == {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "/app", "PATH_INFO": "/a b", "QUERY_STRING": "x=1",
        "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "4", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555", "HTTP_HOST": "example.org",
        "HTTP_X_CUSTOM": "v", "RAW_URI": "/app/a%20b?x=1", "body": b"data"}
    assert "HTTP_X_SPOOF" not in seen and "HTTP_CONTENT_LENGTH" not in seen
    assert seen["wsgi.version"] == (1, 0) and seen["wsgi.multiprocess"] and not seen["wsgi.multithread"]


def test_path_info_is_the_utf8_bytes_as_latin1():
    seen = {}

    def app(environ, start_response):
        seen["path"] = environ["PATH_INFO"]
        start_response("200 OK", [])
        return []

    run_app(app, wsgi_request(target="/app/%C3%A9"))
    assert seen["path"] == "/\u00c3\u00a9" and seen["path"].encode("latin-1").decode("utf-8") == "/\u00e9"


def test_list_answer_is_passed_through_whole():
    def app(environ, start_response):
        start_response("201 Created", [("X-A", "1")])
        return [b"a", b"b"]

    assert run_app(app) == ("201 Created", [("X-A", "1")], b"ab")


def test_write_callable_output_comes_before_a_list_answer():
    def app(environ, start_response):
        start_response("200 OK", [])(b"written ")
        return [b"returned"]

    assert run_app(app)[2] == b"written returned"


def test_header_names_are_turned_into_environ_keys_alike_every_time():
    seen = []

    def app(environ, start_response):
        seen.append(sorted(key for key in environ if key.startswith("HTTP_")))
        start_response("200 OK", [])
        return []

    for _ in range(2):
        run_app(app)
    assert seen[0] == seen[1] == ["HTTP_HOST", "HTTP_X_CUSTOM"]


def test_the_environ_key_memory_is_bounded_by_emptying_it(monkeypatch):
    monkeypatch.setattr(wsgi, "ENVIRON_KEYS", Memo(wsgi.environ_key, wsgi.ENVIRON_KEYS_CACHED))
    for i in range(wsgi.ENVIRON_KEYS_CACHED + 1):
        wsgi.ENVIRON_KEYS[f"x-name-{i}"]
    assert len(wsgi.ENVIRON_KEYS) == 1 and wsgi.ENVIRON_KEYS[f"x-name-{wsgi.ENVIRON_KEYS_CACHED}"] == \
        f"HTTP_X_NAME_{wsgi.ENVIRON_KEYS_CACHED}"


def test_write_callable_output_comes_first():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"written ")
        return iter([b"returned"])

    assert run_app(app)[2] == b"written returned"


def test_generator_app_may_call_start_response_at_its_first_chunk():
    def app(environ, start_response):
        start_response("200 OK", [("X-Lazy", "1")])
        yield b""
        yield b"late"

    assert run_app(app) == ("200 OK", [("X-Lazy", "1")], b"late")


def test_app_that_never_calls_start_response_is_an_error():
    with pytest.raises(RuntimeError):
        run_app(lambda environ, start_response: [b"x"])


def test_second_start_response_without_exc_info_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("500 Oops", [])
        return []

    with pytest.raises(AssertionError):
        run_app(app)


def test_start_response_with_exc_info_replaces_the_status_before_the_body():
    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            raise ValueError("x")
        except ValueError:
            start_response("500 Oops", [("X-Error", "1")], sys.exc_info())
        return [b"failed"]

    assert run_app(app) == ("500 Oops", [("X-Error", "1")], b"failed")


def test_iterable_is_closed_when_the_first_chunk_raises():
    class Failing:
        closed = False

        def __iter__(self):
            raise ValueError("broken")

        def close(self):
            Failing.closed = True

    def app(environ, start_response):
        start_response("200 OK", [])
        return Failing()

    with pytest.raises(ValueError):
        run_app(app)
    assert Failing.closed


def test_file_wrapper_on_a_regular_file_hands_over_the_file(tmp_path):
    (tmp_path / "f").write_bytes(b"content")

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(tmp_path / "f", "rb"))

    status, headers, body = WsgiApp(app)(wsgi_request())
    assert body.read() == b"content"
    body.close()


def test_file_wrapper_on_other_file_likes_iterates_blocks():
    wrapper = FileWrapper(io.BytesIO(b"x" * 10), 4)
    assert list(wrapper) == [b"xxxx", b"xxxx", b"xx"]


def test_errors_stream_goes_to_the_error_log(caplog):
    def app(environ, start_response):
        environ["wsgi.errors"].write("app says\nhello")
        environ["wsgi.errors"].flush()
        start_response("200 OK", [])
        return []

    run_app(app)
    assert "app says" in caplog.text and "hello" in caplog.text


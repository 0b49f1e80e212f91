"""A bare PEP 3333 WSGI application, mounted with `"/wsgi" = "wsgi_hello:application"`.

Any WSGI app (Flask, Django, Bottle...) mounts the same way: OServer runs it in each worker, inline or on its
thread pool (`threads`).
"""


def application(environ, start_response):
    body = (f"Hello from WSGI: {environ['REQUEST_METHOD']} script_name={environ['SCRIPT_NAME']!r} "
            f"path_info={environ['PATH_INFO']!r} query={environ['QUERY_STRING']!r}\n").encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]

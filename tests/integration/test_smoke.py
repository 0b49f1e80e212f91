"""The smallest end-to-end check: a real server answers a real request."""

import requests


def test_directory_index_is_served(server):
    response = requests.get(server.url + "/httptest/dir2/")
    assert response.status_code == 200
    assert response.text == "<html>Directory index file</html>\n"

"""Writes the httptest/ document-root fixtures (run once; the output is committed).

Text fixtures have fixed contents the tests compare against; the images are tiny valid files built here
with zlib/struct so no binary editor or image library is needed.
"""

import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "httptest")
WIKIPEDIA_TARGET_BYTES = 954_824  # about the size of the classic test suite's wikipedia_russia.html


def png(width=2, height=2):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def gif():
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
            b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def jpeg():
    # a 1x1 baseline JPEG (grey), the smallest commonly used valid file
    return bytes.fromhex(
        "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f"
        "141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b08000100010101"
        "1100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504"
        "040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25"
        "262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788"
        "898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3"
        "e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9")


def swf():
    body = b"\x78\x00\x05\x5f\x00\x00\x0f\xa0\x00\x00\x18\x01\x00\x40\x00\x00\x00"
    return b"FWS\x0a" + struct.pack("<I", 8 + len(body)) + body


def pdf():
    return (b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
            b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def wikipedia_page():
    paragraph = ("<p>Россия, или Российская Федерация, — государство в Восточной Европе и Северной Азии. "
                 "Russia is the largest country in the world by area. This page is a test fixture.</p>\n")
    head = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Россия</title></head>\n<body>\n"
    tail = "</body>\n</html>\n"
    body = bytearray(head.encode())
    while len(body) + len(paragraph.encode()) + len(tail) < WIKIPEDIA_TARGET_BYTES:
        body += paragraph.encode()
    return bytes(body) + tail.encode()


FILES = {
    "dir2/index.html": b"<html>Directory index file</html>\n",
    "dir2/page.html": b"<html><body>Page Sample</body></html>\n",
    "dir1/dir12/dir123/deep.txt": b"bingo, you found it\n",
    "dir1/notes.txt": b"dir1 has no index file\n",
    "space in name.txt": b"letters and a space\n",
    "text..txt": b"two dots in the name\n",
    "wikipedia_russia.html": wikipedia_page(),
    "splash.css": b"body { background: #fff; color: #333; }\n",
    "jquery-1.9.1.js": b"/* stand-in */ window.jQuery = function () { return 42; };\n",
    "data.json": b'{"name": "oserver", "fixture": true}\n',
    "readme.txt": b"plain text fixture\n",
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="2" height="2"><rect width="2" height="2"/></svg>\n',
    "doc.pdf": pdf(),
    "pic_ext.png": png(),
    "pic.gif": gif(),
    "pic.jpg": jpeg(),
    "pic.jpeg": jpeg(),
    "movie.swf": swf(),
    "clip.mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "unknown.xyzzy": b"an unknown extension\n",
}


def main():
    for name, data in FILES.items():
        path = os.path.join(ROOT, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

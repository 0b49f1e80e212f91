"""The RFC 9110 / RFC 9112 grammar as compiled regular expressions, each spelled once, with its section.

As h11's `_abnf.py`: the parser, body framing, handler checks and ETag parsing import these instead of
spelling character classes again. Every expression runs in linear time on any input (no nested repeats).
"""

import re

# RFC 9110 5.6.2: token = 1*tchar
TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
TOKEN = TCHAR + rb"+"
# RFC 9112 3: request-line = method SP ..., and a method is a token: what starts otherwise is no request.
REQUEST_START = re.compile(TCHAR)
# RFC 9110 5.5: field-vchar = VCHAR / obs-text, with SP and HTAB inside a value; no CR, LF, NUL or other CTL.
FIELD_CHAR = rb"[\t\x20-\x7e\x80-\xff]"
FIELD_CONTENT = FIELD_CHAR + rb"*"

# RFC 9112 3: request-line = method SP request-target SP HTTP-version, exactly one SP between them.
# The target is any run of visible octets (RFC 9112 3.2); obs-text is tolerated as nginx does.
REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])")
# RFC 9112 5: field-line = field-name ":" OWS field-value OWS, no whitespace before the colon. One character
# class for OWS and value together keeps matching linear; the OWS is stripped from the value afterwards.
FIELD_LINE = re.compile(rb"(" + TOKEN + rb"):(" + FIELD_CONTENT + rb")")
OWS = b" \t"
OWS_TEXT = " \t"
# RFC 9112 2.2: the head ends at the first empty line; a bare LF is accepted as a line terminator.
HEAD_END = re.compile(rb"\r?\n\r?\n")
# RFC 9112 2.2: empty lines (CRLF or bare LF) before the request line are ignored; a bare CR is not one.
LEADING_EMPTY_LINES = re.compile(rb"(?:\r?\n)*")
END_OF_LINE = re.compile(rb"\r?\n")
# RFC 9112 3.2.2: absolute-form, request-target = absolute-URI (http or https here).
ABSOLUTE_FORM = re.compile(r"[hH][tT][tT][pP][sS]?://([^/?#]*)(.*)", re.S)
# RFC 9112 6.3: Content-Length = 1*DIGIT; more digits than this is an absurd length.
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
# RFC 9110 7.2: Host = uri-host [ ":" port ]; RFC 3986 3.2.2: uri-host = IP-literal / IPv4address / reg-name,
# reg-name = *( unreserved / pct-encoded / sub-delims ). No whitespace, slashes or userinfo.
HOST_VALUE = re.compile(r"(?:\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(?::[0-9]*)?")

# RFC 9112 7.1: chunk-size = 1*HEXDIG, then chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
# chunk-ext-val ] ), ignored here but checked to be field text; the line ends with CRLF (or a bare LF).
CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[\t ]*;" + FIELD_CONTENT + rb")?\r?\n")
# RFC 9112 7.1.2: trailer-section = *( field-line CRLF ); trailers are read, not used.
TRAILER_LINE = re.compile(TOKEN + rb":" + FIELD_CONTENT + rb"\r?\n")

# What mounted code may answer (text, not bytes): RFC 9112 4 status-line = status-code [ SP reason-phrase ],
# RFC 9110 5.1 field-name = token, RFC 9110 5.5 field-value.
STATUS = re.compile(r"([2-5][0-9][0-9])(?: (" + FIELD_CONTENT.decode() + r"))?")
FIELD_NAME = re.compile(TOKEN.decode())
FIELD_VALUE = re.compile(FIELD_CONTENT.decode())

# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text. One element
# of a comma-separated list of them, with its whitespace and separators (RFC 9110 5.6.1: empty elements pass).
ENTITY_TAG_ITEM = re.compile(r'[ \t,]*+(W/)?("[\x21\x23-\x7e\x80-\xff]*+")[ \t]*+(?:,[ \t,]*+|\Z)')

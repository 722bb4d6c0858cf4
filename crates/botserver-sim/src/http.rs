//! Just enough HTTP/1.1 for a test stand-in: one request per connection, `Connection: close`.
//!
//! Bodies are read only when `Content-Length` announces them; `Transfer-Encoding` is refused
//! with 501, which HTTP/1.1 allows for a server that does not implement a transfer coding.

use std::io::{self, BufRead, Read, Write};

/// Longest request head (request line plus headers) we accept.
pub const MAX_HEAD_BYTES: u64 = 16 * 1024;
/// Largest request body we accept.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most header fields we accept.
pub const MAX_HEADERS: usize = 100;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path part of the target, still percent-encoded (`/api/health`).
    pub path: String,
    /// Decoded `key=value` pairs of the query, in order.
    pub query: Vec<(String, String)>,
    /// Header fields with lowercased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first query value named `key`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first header named `name` (give it lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// The peer closed the connection before sending a request line (a TCP probe).
    Closed,
    /// Reading failed (timeout, reset); nothing can be answered.
    Io(io::Error),
    /// The bytes are not a request we understand: answer 400 with this reason.
    Bad(String),
    /// The head or the body is too large: answer 431 or 413.
    TooLarge(u16),
    /// `Transfer-Encoding` is present: answer 501.
    UnsupportedTransferEncoding,
}

impl ParseError {
    /// The response that tells the client what was wrong, if one can be sent.
    pub fn response(&self) -> Option<Response> {
        match self {
            ParseError::Closed | ParseError::Io(_) => None,
            ParseError::Bad(why) => Some(Response::text(400, format!("bad request: {why}\n"))),
            ParseError::TooLarge(status) => Some(Response::text(*status, "request too large\n")),
            ParseError::UnsupportedTransferEncoding => Some(Response::text(
                501,
                "Transfer-Encoding is not supported; send Content-Length\n",
            )),
        }
    }
}

fn bad(why: impl Into<String>) -> ParseError {
    ParseError::Bad(why.into())
}

/// Reads one line of the head, without its line ending, charging it to `budget`.
fn read_head_line<R: BufRead>(
    reader: &mut R,
    budget: &mut u64,
) -> Result<Option<String>, ParseError> {
    let mut raw = Vec::new();
    let n = reader
        .take(*budget)
        .read_until(b'\n', &mut raw)
        .map_err(ParseError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    *budget -= n as u64;
    if raw.last() != Some(&b'\n') {
        // Either the budget ran out mid-line or the peer stopped mid-line.
        return Err(if *budget == 0 {
            ParseError::TooLarge(431)
        } else {
            bad("incomplete request head")
        });
    }
    raw.pop();
    if raw.last() == Some(&b'\r') {
        raw.pop();
    }
    String::from_utf8(raw)
        .map(Some)
        .map_err(|_| bad("request head is not UTF-8"))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reads and parses one request from `reader`.
///
/// Errors: [`ParseError::Closed`] when the peer sent nothing at all, [`ParseError::Io`] when
/// the connection failed, and the other variants for requests that deserve an error response.
pub fn read_request<R: BufRead>(reader: &mut R) -> Result<Request, ParseError> {
    let mut budget = MAX_HEAD_BYTES;
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let request_line = loop {
        match read_head_line(reader, &mut budget)? {
            None => return Err(ParseError::Closed),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(bad("request line is not `METHOD TARGET HTTP/1.x`")),
    };
    if !is_token(method) {
        return Err(bad("invalid method"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(bad(format!("unsupported version `{version}`"))),
    };
    if !target.starts_with('/') {
        return Err(bad("target must be an absolute path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, parse_query(q)?),
        None => (target, Vec::new()),
    };

    let mut headers = Vec::new();
    loop {
        let line = read_head_line(reader, &mut budget)?
            .ok_or_else(|| bad("connection closed inside the request head"))?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooLarge(431));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("header line without `:`"))?;
        if !is_token(name) {
            return Err(bad(format!("invalid header name `{name}`")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }

    let mut request = Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
        body: Vec::new(),
    };
    if http11 && request.header("host").is_none() {
        return Err(bad("HTTP/1.1 request without Host header"));
    }
    if request.header("transfer-encoding").is_some() {
        return Err(ParseError::UnsupportedTransferEncoding);
    }
    let mut length: Option<usize> = None;
    for (_, value) in request
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
    {
        let n: usize = value
            .parse()
            .map_err(|_| bad(format!("invalid Content-Length `{value}`")))?;
        if length.is_some_and(|prev| prev != n) {
            return Err(bad("conflicting Content-Length headers"));
        }
        length = Some(n);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge(413));
    }
    request.body = vec![0; length];
    reader.read_exact(&mut request.body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            bad("body shorter than Content-Length")
        } else {
            ParseError::Io(e)
        }
    })?;
    Ok(request)
}

/// Splits `a=1&b=x%2Fy` into decoded pairs; `+` means a space.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, ParseError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; fails on a broken escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Result<String, ParseError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("broken percent-escape in query"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad("query is not UTF-8"))
}

/// A response; `Content-Length` and `Connection: close` are added when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = value.to_string();
        body.push('\n');
        Response::new(status, "application/json", body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes `response`; for a HEAD request (`head_only`) the body is left out but its length kept.
pub fn write_response<W: Write>(w: &mut W, response: &Response, head_only: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, ParseError> {
        read_request(&mut raw.as_bytes())
    }

    fn bad_reason(raw: &str) -> String {
        match parse(raw) {
            Err(ParseError::Bad(why)) => why,
            other => panic!("expected a 400 for {raw:?}, got {other:?}"),
        }
    }

    #[test]
    fn simple_get_is_parsed_with_lowercased_headers() {
        let req = parse("GET /api/health HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n").unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/api/health");
        assert!(req.query.is_empty());
        assert_eq!(req.header("user-agent"), Some("t"));
        assert!(req.body.is_empty());
    }

    #[test]
    fn bare_newlines_and_leading_empty_lines_are_accepted() {
        let req = parse("\r\nGET / HTTP/1.0\n\n").unwrap();
        assert_eq!(req.path, "/");
    }

    #[test]
    fn query_is_split_and_percent_decoded() {
        let req =
            parse("POST /sim/files?path=%2Fetc%2Fbotserver%2Fa+b&x HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap();
        assert_eq!(req.path, "/sim/files");
        assert_eq!(req.query_param("path"), Some("/etc/botserver/a b"));
        assert_eq!(req.query_param("x"), Some(""));
    }

    #[test]
    fn body_is_read_up_to_content_length() {
        let req = parse("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!(req.body, b"abc");
    }

    #[test]
    fn nothing_sent_means_closed_not_bad() {
        assert!(matches!(parse(""), Err(ParseError::Closed)));
    }

    #[test]
    fn malformed_requests_are_rejected_with_a_reason() {
        assert!(bad_reason("GET /\r\n\r\n").contains("request line"));
        assert!(bad_reason("GET / HTTP/2.0\r\n\r\n").contains("version"));
        assert!(bad_reason("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n").contains("absolute path"));
        assert!(bad_reason("GET / HTTP/1.1\r\n\r\n").contains("Host"));
        assert!(bad_reason("GET / HTTP/1.1\r\nHost x\r\n\r\n").contains(':'));
        assert!(
            bad_reason("GET / HTTP/1.1\r\nBad Name: v\r\nHost: x\r\n\r\n").contains("header name")
        );
        assert!(bad_reason("GET /?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n").contains("percent"));
        assert!(
            bad_reason("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
                .contains("Content-Length")
        );
        assert!(bad_reason(
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        )
        .contains("conflicting"));
        assert!(
            bad_reason("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
                .contains("shorter")
        );
        assert!(bad_reason("GET / HTTP/1.1\r\nHost: x\r\n").contains("closed"));
        assert!(bad_reason("GET / HTTP/1.1").contains("incomplete"));
    }

    #[test]
    fn oversized_and_chunked_requests_get_their_own_status() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
        assert!(matches!(parse(&long), Err(ParseError::TooLarge(431))));
        let big = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert!(matches!(parse(&big), Err(ParseError::TooLarge(413))));
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let err = parse(chunked).unwrap_err();
        assert_eq!(err.response().map(|r| r.status), Some(501));
    }

    #[test]
    fn head_response_keeps_length_but_drops_body() {
        let resp = Response::text(200, "hello\n").with_header("X-A", "b");
        let mut full = Vec::new();
        write_response(&mut full, &resp, false).unwrap();
        let full = String::from_utf8(full).unwrap();
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(full.contains("X-A: b\r\n"));
        assert!(full.contains("Content-Length: 6\r\nConnection: close\r\n\r\n"));
        assert!(full.ends_with("\r\n\r\nhello\n"));

        let mut head = Vec::new();
        write_response(&mut head, &resp, true).unwrap();
        let head = String::from_utf8(head).unwrap();
        assert!(head.contains("Content-Length: 6\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }
}

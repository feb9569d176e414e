//! HTTP/1.1 GET over a byte stream, pure: the URL grammar we accept, the request bytes, and
//! a response reader that keeps a bounded body, hashes all of it, and knows when it ended.
//!
//! Only `http://IPV4[:PORT][/PATH]`: no DNS, no TLS (the metadata server is plain HTTP on
//! 169.254.169.254). The body ends at Content-Length, at the end of the chunked encoding, or
//! when the server closes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::error::NetError;

/// Bytes of status line and headers we accept at most (policy).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Starts with '/'.
    pub path: String,
    /// As typed, for the Host header.
    pub host: String,
}

/// Parses `http://IPV4[:PORT][/PATH]`.
pub fn parse_url(text: &str) -> Result<Url, NetError> {
    let bad = |why: &str| NetError::BadUrl(alloc::format!("'{text}': {why}"));
    let rest = text
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("the path has spaces or control characters"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be 1..=65535"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let ip = host
        .parse::<Ipv4Addr>()
        .map_err(|_| bad("the host must be an IPv4 address (there is no DNS here)"))?;
    Ok(Url {
        ip,
        port,
        path: path.to_string(),
        host: authority.to_string(),
    })
}

/// Parses a `Name: value` header argument.
pub fn parse_header(text: &str) -> Result<(String, String), NetError> {
    let bad = || NetError::BadUrl(alloc::format!("header '{text}' is not 'Name: value'"));
    let (name, value) = text.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad());
    }
    let value = value.trim();
    if value.bytes().any(|b| b < b' ' && b != b'\t') {
        return Err(bad());
    }
    Ok((name.to_string(), value.to_string()))
}

/// The request: GET, our Host, `Connection: close`, then the caller's headers.
pub fn request(url: &Url, headers: &[(String, String)]) -> Vec<u8> {
    let mut text = alloc::format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bringup\r\nAccept: */*\r\nConnection: close\r\n",
        url.path, url.host
    );
    for (name, value) in headers {
        text.push_str(&alloc::format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// Chunked decoding state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the size line.
    Size,
    /// `n` data bytes left in this chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailers after the last chunk, up to the empty line.
    Trailer,
    Done,
}

/// The parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The first `max_body` bytes of the body.
    pub body: Vec<u8>,
    /// All body bytes received (after chunked decoding).
    pub body_bytes: u64,
    /// More body arrived than `max_body`.
    pub truncated: bool,
    /// SHA-256 of the whole body.
    pub sha256: [u8; 32],
    /// The body ended as its framing says (length reached, last chunk, or close).
    pub complete: bool,
}

/// Feeds stream bytes in, says when the response has ended.
pub struct Reader {
    max_body: usize,
    head: Vec<u8>,
    parsed: Option<Head>,
    body: Vec<u8>,
    body_bytes: u64,
    hash: Sha256,
    chunk: Chunk,
    line: Vec<u8>,
    /// Stream bytes seen.
    pub received: u64,
}

impl Reader {
    pub fn new(max_body: usize) -> Self {
        Reader {
            max_body,
            head: Vec::new(),
            parsed: None,
            body: Vec::new(),
            body_bytes: 0,
            hash: Sha256::new(),
            chunk: Chunk::Size,
            line: Vec::new(),
            received: 0,
        }
    }

    /// Takes the next stream bytes; Ok(true) once the body is complete by its framing.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<bool, NetError> {
        self.received += data.len() as u64;
        if self.parsed.is_none() {
            let before = self.head.len();
            self.head.extend_from_slice(data);
            let Some(end) = find(&self.head, b"\r\n\r\n") else {
                if self.head.len() > MAX_HEAD_BYTES {
                    return Err(NetError::BadResponse(alloc::format!(
                        "no end of headers within {MAX_HEAD_BYTES} bytes"
                    )));
                }
                return Ok(false);
            };
            self.parsed = Some(parse_head(&self.head[..end])?);
            data = &data[end + 4 - before..];
        }
        self.body_data(data);
        Ok(self.done())
    }

    fn done(&self) -> bool {
        match self.parsed.as_ref().map(|p| p.3) {
            Some(Framing::Length(n)) => self.body_bytes >= n,
            Some(Framing::Chunked) => self.chunk == Chunk::Done,
            _ => false,
        }
    }

    fn keep(&mut self, data: &[u8]) {
        self.hash.update(data);
        self.body_bytes += data.len() as u64;
        let room = self.max_body.saturating_sub(self.body.len());
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn body_data(&mut self, mut data: &[u8]) {
        match self.parsed.as_ref().map(|p| p.3) {
            Some(Framing::Length(n)) => {
                let left = n.saturating_sub(self.body_bytes) as usize;
                let take = &data[..data.len().min(left)];
                self.keep(take);
            }
            Some(Framing::UntilClose) => self.keep(data),
            Some(Framing::Chunked) => {
                while !data.is_empty() && self.chunk != Chunk::Done {
                    match self.chunk {
                        Chunk::Data(left) => {
                            let take = data.len().min(left as usize);
                            self.keep(&data[..take]);
                            data = &data[take..];
                            self.chunk = if left == take as u64 {
                                Chunk::DataEnd
                            } else {
                                Chunk::Data(left - take as u64)
                            };
                        }
                        _ => {
                            let (&byte, rest) = data.split_first().expect("not empty");
                            data = rest;
                            if byte != b'\n' {
                                if self.line.len() < 256 {
                                    self.line.push(byte);
                                }
                                continue;
                            }
                            let line = core::mem::take(&mut self.line);
                            let line = line.strip_suffix(b"\r").unwrap_or(&line);
                            self.chunk = match self.chunk {
                                Chunk::Size => {
                                    let size = core::str::from_utf8(line)
                                        .ok()
                                        .and_then(|l| l.split(';').next())
                                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                                    match size {
                                        Some(0) => Chunk::Trailer,
                                        Some(n) => Chunk::Data(n),
                                        // A broken size line ends the body here.
                                        None => Chunk::Done,
                                    }
                                }
                                Chunk::DataEnd => Chunk::Size,
                                Chunk::Trailer if line.is_empty() => Chunk::Done,
                                other => other,
                            };
                        }
                    }
                }
            }
            None => {}
        }
    }

    /// The response so far; `closed` says the server closed the stream (which completes a
    /// close-delimited body). None before the headers ended.
    pub fn finish(self, closed: bool) -> Option<Response> {
        let complete = self.done()
            || (closed && matches!(self.parsed.as_ref().map(|p| p.3), Some(Framing::UntilClose)));
        let (status_line, status, headers, _) = self.parsed?;
        Some(Response {
            status_line,
            status,
            headers,
            truncated: self.body_bytes > self.body.len() as u64,
            body: self.body,
            body_bytes: self.body_bytes,
            sha256: self.hash.finalize().into(),
            complete,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type Head = (String, u16, Vec<(String, String)>, Framing);

fn parse_head(head: &[u8]) -> Result<Head, NetError> {
    let text = core::str::from_utf8(head)
        .map_err(|_| NetError::BadResponse("headers are not UTF-8".to_string()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let mut words = status_line.splitn(3, ' ');
    let version = words.next().unwrap_or("");
    let status = words.next().and_then(|s| s.parse::<u16>().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(NetError::BadResponse(alloc::format!(
            "status line '{}'",
            status_line.chars().take(80).collect::<String>()
        )));
    };
    let mut headers = Vec::new();
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(NetError::BadResponse(alloc::format!(
                "header line '{}'",
                line.chars().take(80).collect::<String>()
            )));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| NetError::BadResponse(alloc::format!("Content-Length '{value}'")))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        }
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        }
        headers.push((name.to_string(), value.to_string()));
    }
    Ok((status_line, status, headers, framing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = parse_url("http://169.254.169.254/computeMetadata/v1/instance/id").unwrap();
        assert_eq!(url.ip, Ipv4Addr::new(169, 254, 169, 254));
        assert_eq!(
            (url.port, url.path.as_str()),
            (80, "/computeMetadata/v1/instance/id")
        );
        let url = parse_url("http://10.0.0.1:8080").unwrap();
        assert_eq!(
            (url.port, url.path.as_str(), url.host.as_str()),
            (8080, "/", "10.0.0.1:8080")
        );
        for bad in [
            "https://1.2.3.4/",
            "http://metadata.google.internal/",
            "http://1.2.3.4:0/",
            "http://1.2.3.4:99999/",
            "http:///x",
            "http://1.2.3.4/a b",
            "ftp://x",
        ] {
            assert_eq!(parse_url(bad).unwrap_err().code(), "net-bad-url", "{bad}");
        }
    }

    #[test]
    fn headers_and_request() {
        assert_eq!(
            parse_header("Metadata-Flavor: Google").unwrap(),
            ("Metadata-Flavor".to_string(), "Google".to_string())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        let url = parse_url("http://10.0.0.1/p").unwrap();
        let req = request(&url, &[("A".to_string(), "b".to_string())]);
        let text = core::str::from_utf8(&req).unwrap();
        assert!(text.starts_with("GET /p HTTP/1.1\r\nHost: 10.0.0.1\r\n"));
        assert!(text.ends_with("Connection: close\r\nA: b\r\n\r\n"));
    }

    #[test]
    fn content_length_body_in_pieces_is_bounded_and_hashed() {
        let mut reader = Reader::new(4);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX: y\r\n\r\n0123456789";
        for piece in wire.chunks(7) {
            let done = reader.feed(piece).unwrap();
            assert_eq!(done, piece.last() == Some(&b'9'));
        }
        let r = reader.finish(false).unwrap();
        assert_eq!((r.status, r.status_line.as_str()), (200, "HTTP/1.1 200 OK"));
        assert_eq!(r.body, b"0123");
        assert!(r.truncated && r.complete);
        assert_eq!(r.body_bytes, 10);
        assert_eq!(r.sha256, <[u8; 32]>::from(Sha256::digest(b"0123456789")));
        assert_eq!(r.headers[1], ("X".to_string(), "y".to_string()));
    }

    #[test]
    fn chunked_and_close_delimited() {
        let mut reader = Reader::new(100);
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n";
        assert!(reader.feed(wire).unwrap());
        let r = reader.finish(false).unwrap();
        assert_eq!(r.body, b"Wikipedia");
        let mut reader = Reader::new(100);
        assert!(!reader.feed(b"HTTP/1.0 403 Forbidden\r\n\r\nno").unwrap());
        let r = reader.finish(true).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.complete),
            (403, &b"no"[..], true)
        );
    }

    #[test]
    fn garbage_is_a_named_error() {
        let mut reader = Reader::new(10);
        assert_eq!(
            reader.feed(b"SSH-2.0-x\r\n\r\n").unwrap_err().code(),
            "net-bad-response"
        );
        assert!(Reader::new(1).finish(true).is_none());
    }
}

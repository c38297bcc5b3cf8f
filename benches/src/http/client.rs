//! A minimal keep-alive HTTP/1.1 client over a blocking `TcpStream`: one request
//! at a time on one connection, `Content-Length` or chunked replies.
//!
//! The bench's clients share the two cores with both servers and PostgreSQL, so
//! the client should cost as little as it can and the same for both sides: one
//! `write` per request, buffered reads, no TLS, no pool, no runtime. Vault's API
//! needs nothing more (JSON in, JSON out, `X-Vault-Token`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One reply: its status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("status {}: a body that is not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(400).collect()
    }
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
    /// Connections opened again after the server closed one.
    pub reconnects: usize,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let mut conn = Conn { addr, reader: None, request: Vec::with_capacity(512), reconnects: 0 };
        conn.open()?;
        Ok(conn)
    }

    fn open(&mut self) -> io::Result<()> {
        let stream = TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        self.reader = Some(BufReader::with_capacity(16 * 1024, stream));
        Ok(())
    }

    /// Sends one request and reads its reply. A connection the server closed
    /// while idle is opened again once (and counted).
    pub fn call(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> io::Result<Reply> {
        self.request.clear();
        let _ = write!(self.request, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(token) = token {
            let _ = write!(self.request, "X-Vault-Token: {token}\r\n");
        }
        match body {
            Some(body) => {
                let _ =
                    write!(self.request, "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
                self.request.extend_from_slice(body);
            }
            None => self.request.extend_from_slice(b"\r\n"),
        }
        if self.reader.is_none() {
            self.open()?;
            self.reconnects += 1;
        }
        match self.exchange() {
            Ok(reply) => Ok(reply),
            // Closed between requests (an idle timeout): the request never
            // reached a handler, so sending it again is safe.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::ConnectionReset => {
                self.open()?;
                self.reconnects += 1;
                self.exchange()
            }
            Err(e) => Err(e),
        }
    }

    fn exchange(&mut self) -> io::Result<Reply> {
        let reader = self.reader.as_mut().expect("connected");
        reader.get_mut().write_all(&self.request)?;
        let (reply, keep_alive) = read_reply(reader)?;
        if !keep_alive {
            self.reader = None;
        }
        Ok(reply)
    }
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads one reply; says whether the connection stays open.
fn read_reply(reader: &mut BufReader<TcpStream>) -> io::Result<(Reply, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a reply"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("not an HTTP status line: {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = line.starts_with("HTTP/1.1");
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside the headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| bad(format!("Content-Length {value:?}")))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else if status != 204 && status != 304 && !(100..200).contains(&status) {
        // No length: the body runs to the end of the connection.
        reader.read_to_end(&mut body)?;
        keep_alive = false;
    }
    Ok((Reply { status, body }, keep_alive))
}

//! A blocking TLS client stream that still hears the peer after a failed
//! write.
//!
//! `rustls::StreamOwned` sends whatever it has buffered before each read.
//! When a write failed because the peer closed (it refused something and
//! said why in its last message), that first send fails again and the
//! read never gets to the peer's message, which is already waiting in the
//! socket. [`ClientStream`] stops sending once a write has failed, and its
//! reads then only read.

use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A TLS client connection over TCP, as `StreamOwned`, whose reads after a
/// failed write deliver what the peer sent before it closed.
pub struct ClientStream {
    inner: StreamOwned<ClientConnection, TcpStream>,
    broken: bool,
}

impl ClientStream {
    /// Wraps an established (or establishing) connection.
    pub fn new(inner: StreamOwned<ClientConnection, TcpStream>) -> Self {
        Self {
            inner,
            broken: false,
        }
    }

    /// The stream inside (the connection and the socket).
    pub fn get_mut(&mut self) -> &mut StreamOwned<ClientConnection, TcpStream> {
        &mut self.inner
    }

    fn mark<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.broken = true;
        }
        r
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.broken {
            return self.inner.read(buf);
        }
        let StreamOwned { conn, sock } = &mut self.inner;
        loop {
            match conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            let n = conn.read_tls(sock)?;
            conn.process_new_packets().map_err(io::Error::other)?;
            if n == 0 {
                return match conn.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    r => r,
                };
            }
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let r = self.inner.write(buf);
        self.mark(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let r = self.inner.flush();
        self.mark(r)
    }
}

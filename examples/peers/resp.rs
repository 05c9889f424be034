//! A minimal Redis client (RESP2 over TCP): enough for SET/GET/CONFIG/SCAN/UNLINK,
//! pipelining, and reading the messages of a SUBSCRIBE. No dependency beyond tokio.

use anyhow::{anyhow, bail, Context, Result};
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The value as text (simple or bulk strings, integers).
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(s) => Some(s.clone()),
            Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(Some(items)) => items,
            _ => &[],
        }
    }
}

pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    out: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Conn> {
        let stream =
            tokio::time::timeout(std::time::Duration::from_secs(2), TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow!("connecting to Redis at {addr} timed out"))?
                .with_context(|| format!("cannot connect to Redis at {addr}"))?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Conn {
            reader: BufReader::with_capacity(1 << 16, r),
            writer: w,
            out: Vec::with_capacity(1 << 16),
        })
    }

    /// Appends a command to the output buffer (sent by [`Conn::flush`]).
    pub fn queue(&mut self, args: &[&[u8]]) {
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            self.out
                .extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.writer.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// One command, its reply; a Redis error reply is an error.
    pub async fn cmd(&mut self, args: &[&[u8]]) -> Result<Value> {
        self.queue(args);
        self.flush().await?;
        match self.read().await? {
            Value::Error(e) => bail!(
                "Redis answered {} with an error: {e}",
                String::from_utf8_lossy(args[0])
            ),
            v => Ok(v),
        }
    }

    async fn line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            bail!("Redis closed the connection");
        }
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            bail!("malformed RESP line");
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// Reads one reply (or one pushed message of a subscription).
    pub fn read(&mut self) -> Pin<Box<dyn Future<Output = Result<Value>> + Send + '_>> {
        Box::pin(async move {
            let line = self.line().await?;
            let rest = String::from_utf8_lossy(&line[1..]).into_owned();
            Ok(match line[0] {
                b'+' => Value::Simple(rest),
                b'-' => Value::Error(rest),
                b':' => Value::Int(rest.parse()?),
                b'$' => {
                    let len: i64 = rest.parse()?;
                    if len < 0 {
                        Value::Bulk(None)
                    } else {
                        let mut buf = vec![0u8; len as usize + 2];
                        self.reader.read_exact(&mut buf).await?;
                        buf.truncate(len as usize);
                        Value::Bulk(Some(buf))
                    }
                }
                b'*' => {
                    let len: i64 = rest.parse()?;
                    if len < 0 {
                        Value::Array(None)
                    } else {
                        let mut items = Vec::with_capacity(len as usize);
                        for _ in 0..len {
                            items.push(self.read().await?);
                        }
                        Value::Array(Some(items))
                    }
                }
                other => bail!("unexpected RESP type byte {other:#x}"),
            })
        })
    }
}

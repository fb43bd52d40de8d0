//! A webhook receiver for tests: a tiny HTTP server that records what it
//! accepts and can be switched to failing (as if down).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub event_id: String,
    pub body: serde_json::Value,
    pub raw: String,
}

pub struct Receiver {
    pub url: String,
    pub accepted: Arc<Mutex<Vec<Received>>>,
    pub refused: Arc<Mutex<usize>>,
    pub down: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0usize));
        let down = Arc::new(AtomicBool::new(false));
        let (a, r, dn) = (accepted.clone(), refused.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let l = line.trim_end().to_string();
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    headers.push(l);
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let header = |name: &str| {
                    headers
                        .iter()
                        .find(|h| h.to_ascii_lowercase().starts_with(&format!("{name}:")))
                        .map(|h| h.split_once(':').unwrap().1.trim().to_string())
                        .unwrap_or_default()
                };
                let status = if dn.load(Ordering::SeqCst) {
                    *r.lock().unwrap() += 1;
                    "503 Service Unavailable"
                } else {
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    a.lock().unwrap().push(Received {
                        signature: header("x-stagegate-signature"),
                        event_id: header("x-stagegate-event-id"),
                        body: serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null),
                        raw,
                    });
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            url,
            accepted,
            refused,
            down,
        }
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().unwrap().clone()
    }
}

//! Running the real `stagegate serve` for end-to-end HTTP tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every log line the server wrote (JSON), collected in the background.
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Server {
    /// Starts `stagegate serve --config CONFIG` in `cwd` on a free port and
    /// waits until it listens.
    pub fn start(cwd: &Path, config: Option<&Path>) -> Server {
        Self::try_start(cwd, config).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    pub fn try_start(cwd: &Path, config: Option<&Path>) -> Result<Server, String> {
        let mut cmd = Command::new(super::bin());
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .current_dir(cwd)
            .env("RUST_LOG", "info,stagegate=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_address(&line) {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => Ok(Server { child, addr, logs }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "exit {status:?}; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                ))
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends a request and returns the reply whatever its status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        send(&self.url(path), method, token, content_type, body)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None, None)
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("POST", path, token, Some("application/json"), Some(&bytes))
    }

    pub fn put_bundle(&self, name: &str, token: Option<&str>, bytes: &[u8], force: bool) -> Reply {
        let path = if force {
            format!("/v1/bundles/{name}?force=true")
        } else {
            format!("/v1/bundles/{name}")
        };
        self.send(
            "PUT",
            &path,
            token,
            Some("application/octet-stream"),
            Some(bytes),
        )
    }

    /// SIGTERM, then waits for exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: a crash, as far as the server can tell.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory of the server process, in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// The server process's peak resident memory so far, in KiB (Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address from the "stagegate listening" log line (JSON or pretty).
fn listening_address(line: &str) -> Option<String> {
    if !line.contains("stagegate listening") {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return v["address"].as_str().map(str::to_string);
    }
    let i = line.find("address=")? + "address=".len();
    Some(line[i..].split_whitespace().next()?.to_string())
}

/// Raw HTTP/1.1 over TCP, for what a polite client library will not do
/// (declaring a huge body and waiting for the verdict before sending it).
pub fn raw(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n")
            && String::from_utf8_lossy(&out).contains("\"error\"")
        {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One HTTP request, any status: the one request helper of the tests.
/// Build it, add what the request needs, [`Request::send`] it.
///
/// ```ignore
/// Request::get(&s.url("/ui")).header("Accept", "text/html").no_redirects().send()
/// ```
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
    redirects: u32,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(60),
            redirects: 5,
        }
    }

    pub fn get(url: &str) -> Request {
        Self::new("GET", url)
    }

    pub fn post(url: &str) -> Request {
        Self::new("POST", url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Each `(name, value)` as a header.
    pub fn headers(self, headers: &[(&str, &str)]) -> Request {
        headers
            .iter()
            .fold(self, |req, (name, value)| req.header(name, value))
    }

    /// `Authorization: Bearer TOKEN`, when there is a token.
    pub fn bearer(self, token: Option<&str>) -> Request {
        match token {
            Some(t) => self.header("Authorization", &format!("Bearer {t}")),
            None => self,
        }
    }

    /// The body, with its content type if given.
    pub fn body(mut self, content_type: Option<&str>, body: &[u8]) -> Request {
        if let Some(ct) = content_type {
            self = self.header("Content-Type", ct);
        }
        self.body = Some(body.to_vec());
        self
    }

    /// A JSON body.
    pub fn json(self, body: &serde_json::Value) -> Request {
        self.body(
            Some("application/json"),
            &serde_json::to_vec(body).expect("JSON"),
        )
    }

    /// An `application/x-www-form-urlencoded` body, as a browser sends a form.
    pub fn form(self, fields: &[(&str, &str)]) -> Request {
        fn encode(s: &str) -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect()
        }
        let text = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.body(Some("application/x-www-form-urlencoded"), text.as_bytes())
    }

    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Returns a redirect as it is (its status, `Location` and cookies)
    /// instead of following it.
    pub fn no_redirects(mut self) -> Request {
        self.redirects = 0;
        self
    }

    pub fn send(self) -> Reply {
        let agent = ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .redirects(self.redirects)
            .build();
        let mut req = agent.request(&self.method, &self.url);
        for (name, value) in &self.headers {
            req = req.set(name, value);
        }
        reply_of(match &self.body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        })
    }
}

/// One HTTP request with ureq, any status (a [`Request`] in one call).
pub fn send(
    url: &str,
    method: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Reply {
    let req = Request::new(method, url).bearer(token);
    match body {
        Some(b) => req.body(content_type, b),
        None => match content_type {
            Some(ct) => req.header("Content-Type", ct),
            None => req,
        },
    }
    .send()
}

/// A ureq result as a reply, whatever the status; status 0 for a
/// transport error (its text in the body).
pub fn reply_of(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => {
            return Reply {
                status: 0,
                headers: Vec::new(),
                body: e.to_string(),
            };
        }
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// A test deployment: a temp directory with a trust store, a signing key,
/// a config file and helpers to make signed bundles of any version.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// A directory with `keys/dev` (trusted via `trust/`) and `config.toml`
    /// made from `tables` (TOML appended after the `[trust]` table).
    pub fn new(tables: &str) -> Self {
        Self::with("", tables)
    }

    /// Like [`Deployment::new`], with top-level keys `top` too.
    pub fn with(top: &str, tables: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (_, public) = stagegate::bundle::keys::generate(&d.join("keys/dev")).unwrap();
        std::fs::create_dir_all(d.join("trust")).unwrap();
        std::fs::copy(public, d.join("trust/dev.pub")).unwrap();
        let config = format!(
            "{top}\ndata_dir = \"{data}\"\nlog_format = \"json\"\n[trust]\ndir = \"{trust}\"\n{tables}\n",
            data = d.join("data").display(),
            trust = d.join("trust").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        Deployment { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("config.toml")
    }

    pub fn start(&self) -> Server {
        Server::start(self.dir.path(), Some(&self.config()))
    }

    /// The reference policy as bundle `name` at `version`, signed by the
    /// trusted dev key.
    pub fn reference(&self, version: &str) -> Vec<u8> {
        self.bundle_from(
            super::reference_bundle(),
            "iso42001-reference",
            version,
            "stagegate:policy@1.0.0",
            true,
        )
    }

    /// The reference policy at `version` with top-level keys of its
    /// params.json replaced by `params`.
    pub fn reference_with_params(&self, version: &str, params: serde_json::Value) -> Vec<u8> {
        let template = super::reference_bundle();
        let mut base: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&template.params().unwrap()).unwrap();
        base.extend(params.as_object().unwrap().clone());
        let mut files: std::collections::BTreeMap<String, Vec<u8>> = template
            .manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), template.file(&f.path).unwrap().to_vec()))
            .collect();
        files.insert(
            "params.json".into(),
            serde_json::to_vec_pretty(&base).unwrap(),
        );
        let mut b = stagegate::bundle::Bundle::new(
            "iso42001-reference",
            semver::Version::parse(version).unwrap(),
            "stagegate:policy@1.0.0",
            None,
            files,
        )
        .unwrap();
        b.sign(&stagegate::bundle::keys::load_secret(&self.path("keys/dev")).unwrap());
        b.to_bytes().unwrap()
    }

    /// `template`'s files as a bundle with the given identity.
    pub fn bundle_from(
        &self,
        template: &stagegate::bundle::Bundle,
        name: &str,
        version: &str,
        wit: &str,
        sign: bool,
    ) -> Vec<u8> {
        let files = template
            .manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), template.file(&f.path).unwrap().to_vec()))
            .collect();
        let mut b = stagegate::bundle::Bundle::new(
            name,
            semver::Version::parse(version).unwrap(),
            wit,
            None,
            files,
        )
        .unwrap();
        if sign {
            let key = stagegate::bundle::keys::load_secret(&self.path("keys/dev")).unwrap();
            b.sign(&key);
        }
        b.to_bytes().unwrap()
    }
}

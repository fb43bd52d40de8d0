//! A real OCI registry for the end-to-end tests: Debian's `docker-registry`
//! package (the CNCF distribution registry), on a loopback port with its
//! storage in a temporary directory.
//!
//! When the binary is missing the tests that need it are skipped and
//! listed on a developer machine, and fail under `CI`
//! ([`super::require_tool`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The registry binary, or None when the test is skipped (panics under
/// `CI`).
pub fn binary() -> Option<PathBuf> {
    super::require_tool("docker-registry").then(super::tools::registry_path)
}

/// A running registry; stopped when dropped. Its storage outlives a stop,
/// so [`Registry::restart`] serves the same repositories.
pub struct Registry {
    binary: PathBuf,
    pub storage: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    /// Every log line (one per request at `info`).
    logs: Arc<Mutex<Vec<String>>>,
    /// An htpasswd line (`USER:BCRYPT`): the registry then wants basic
    /// authentication.
    htpasswd: Option<String>,
}

impl Registry {
    /// Starts a registry on a free loopback port, or None to skip.
    pub fn start() -> Option<Registry> {
        Self::start_with(None)
    }

    /// Starts a registry that wants basic authentication by `htpasswd`
    /// (`USER:BCRYPT-HASH`), or None to skip.
    pub fn start_with(htpasswd: Option<&str>) -> Option<Registry> {
        let binary = binary()?;
        let storage = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut r = Registry {
            binary,
            storage,
            addr: format!("127.0.0.1:{port}"),
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            htpasswd: htpasswd.map(str::to_string),
        };
        r.restart();
        Some(r)
    }

    fn config(&self) -> PathBuf {
        let path = self.storage.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
            self.storage.path().join("data").display(),
            self.addr
        );
        if let Some(line) = &self.htpasswd {
            let file = self.storage.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: stagegate-test\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// (Re)starts the registry process and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the registry is running");
        let mut child = Command::new(&self.binary)
            .arg("serve")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        let stderr = child.stderr.take().unwrap();
        let sink = self.logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = super::server::send(
                &format!("http://{}/v2/", self.addr),
                "GET",
                None,
                None,
                None,
            );
            if r.status == 200 || (r.status == 401 && self.htpasswd.is_some()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not answer: {}\n{}",
                r.body,
                self.logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the registry (SIGKILL); the storage stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `oci://ADDR/REPO:TAG`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.addr)
    }

    /// How many requests the registry has logged whose method and path
    /// contain `method` and `path_part` (from its `response completed`
    /// lines).
    pub fn requests(&self, method: &str, path_part: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l.contains("response completed")
                    && l.contains(&format!("http.request.method={method}"))
                    && l.contains(path_part)
            })
            .count()
    }

    /// Every request the registry has logged.
    pub fn all_requests(&self) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("response completed"))
            .count()
    }

    /// The blob file of `digest` (`sha256:…`) in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn storage(&self) -> &Path {
        self.storage.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

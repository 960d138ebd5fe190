//! `sealwright serve` as a real process for end-to-end tests: a config file and registrations
//! directory in a temp dir, a free loopback port, every log line (TRACE) captured to a file, and
//! start/stop/kill.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http;

pub const ADMIN: &str = "test-admin-token-5f1c-0123456789abcdef";

pub struct Server {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub config: PathBuf,
    pub addr: String,
    child: Option<Child>,
    /// How many times it was started (each start logs to its own file).
    starts: usize,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Writes `config` (YAML) to `<dir>/sealwright.yaml`; the data dir is `<dir>/data`.
    pub fn new(dir: &Path, config: &str) -> Server {
        std::fs::create_dir_all(dir.join("registrations")).unwrap();
        let path = dir.join("sealwright.yaml");
        std::fs::write(&path, config).unwrap();
        Server {
            dir: dir.to_path_buf(),
            data: dir.join("data"),
            config: path,
            addr: format!("127.0.0.1:{}", free_port()),
            child: None,
            starts: 0,
        }
    }

    /// Starts the server and waits until `/readyz` answers 200.
    pub fn start(&mut self, env: &[(&str, &str)]) {
        let addr = self.addr.clone();
        self.launch(env, move || {
            std::net::TcpStream::connect(&addr).is_ok()
                && http::get(&addr, "/readyz", None).status == 200
        });
    }

    /// Starts a server that speaks HTTPS and waits until `/readyz` answers 200 over it
    /// (curl, trusting `ca`).
    pub fn start_tls(&mut self, env: &[(&str, &str)], ca: &Path) {
        let url = format!("https://{}/readyz", self.addr);
        let ca = ca.to_path_buf();
        self.launch(env, move || {
            super::certs::curl(&url, &ca, None, None, &[]).status == 200
        });
    }

    /// Starts the server and waits until `/healthz` answers 200 (a controller-mode standby is
    /// never ready).
    pub fn start_standby(&mut self, env: &[(&str, &str)]) {
        let addr = self.addr.clone();
        self.launch(env, move || {
            std::net::TcpStream::connect(&addr).is_ok()
                && http::get(&addr, "/healthz", None).status == 200
        });
    }

    /// Whether `/readyz` answers 200 now.
    pub fn is_ready(&self) -> bool {
        http::try_request(&self.addr, "GET", "/readyz", None, None).is_ok_and(|r| r.status == 200)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn launch(&mut self, env: &[(&str, &str)], ready: impl Fn() -> bool) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("server-{}.log", self.starts))).unwrap();
        let mut c = Command::new(super::sealwright_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("SEALWRIGHT_ADMIN_TOKEN", ADMIN)
            .args(["-vvv", "serve", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--listen", &self.addr])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        self.child = Some(c.spawn().expect("start sealwright serve"));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sealwright serve exited ({status}):\n{}", self.logs());
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in time:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every log line of every run so far.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("server-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn repo(&self, full_name: &str) -> PathBuf {
        self.data.join("repos").join(format!("{full_name}.git"))
    }

    pub fn cluster_key(&self) -> PathBuf {
        self.data.join("keys/cluster.agekey")
    }

    pub fn get(&self, path: &str) -> http::Response {
        http::get(&self.addr, path, Some(ADMIN))
    }

    pub fn send(&self, method: &str, path: &str, body: &serde_json::Value) -> http::Response {
        http::send(&self.addr, method, path, Some(ADMIN), body)
    }

    pub fn delete(&self, path: &str) -> http::Response {
        http::request(&self.addr, "DELETE", path, Some(ADMIN), None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A checkout of a bare repository's `main` (replaced if it exists), for kustomize and sops.
pub fn checkout(bare: &Path, dest: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dest);
    let out = Command::new("git")
        .args(["clone", "-q", "--branch", "main"])
        .arg(bare)
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dest.to_path_buf()
}

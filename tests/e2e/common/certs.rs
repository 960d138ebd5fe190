//! Certificates for the TLS tests, made with the real `openssl` CLI: a CA, and leaf
//! certificates it signs for a server (loopback names) or a client (the names given).

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA: `<dir>/<name>.pem` and its key `<dir>/<name>.key`.
pub struct Ca {
    pub dir: PathBuf,
    pub name: String,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        }
    }

    pub fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A leaf `<dir>/<leaf>.pem` + `<dir>/<leaf>.key` with these subject alternative names
    /// (`DNS:x`, `IP:x`, `URI:x`, `email:x`), for `serverAuth` or `clientAuth`.
    pub fn issue(&self, leaf: &str, sans: &[&str], usage: &str) -> (PathBuf, PathBuf) {
        let d = &self.dir;
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{leaf}.key"),
                "-out",
                &format!("{leaf}.csr"),
                "-subj",
                &format!("/CN={leaf}"),
            ],
        );
        std::fs::write(
            d.join(format!("{leaf}.ext")),
            format!(
                "subjectAltName={}\nextendedKeyUsage={usage}\n",
                sans.join(",")
            ),
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{leaf}.csr"),
                "-CA",
                &format!("{}.pem", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-CAcreateserial",
                "-out",
                &format!("{leaf}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{leaf}.ext"),
            ],
        );
        (d.join(format!("{leaf}.pem")), d.join(format!("{leaf}.key")))
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, leaf: &str) -> (PathBuf, PathBuf) {
        self.issue(leaf, &["IP:127.0.0.1", "DNS:localhost"], "serverAuth")
    }
}

/// What `curl` (Debian's, a real TLS client) made of one request.
pub struct Curl {
    /// curl's exit code: 0 when a response came back (whatever its status).
    pub exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// `curl` over HTTPS trusting `ca`, with an optional client certificate and bearer token.
pub fn curl(
    url: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    token: Option<&str>,
    extra: &[&str],
) -> Curl {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca);
    if let Some((cert, key)) = client {
        c.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    c.args(extra).arg(url);
    let out = c.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

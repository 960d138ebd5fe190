//! Headless Chromium (Debian's `chromium` and `chromium-driver`) driven over WebDriver with
//! fantoccini, wrapped in blocking calls so that a test reads like what a person does: go to a
//! page, fill a field, press a button, wait for the page to show something.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Every page's HTML as it was shown, for the never-a-value checks.
    pub seen: Vec<(String, String)>,
}

fn bin(env: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        p.exists(),
        "{} is missing: run ./scripts/test-deps.sh (it installs Debian's chromium and chromium-driver)",
        p.display()
    );
    p
}

impl Browser {
    pub fn start() -> Browser {
        let chromium = bin("SEALWRIGHT_CHROMIUM", "/usr/bin/chromium");
        let driver_bin = bin("SEALWRIGHT_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = super::server::free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,860", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())],
            }
        }))
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let conn = hyper_util::client::legacy::connect::HttpConnector::new();
            match rt.block_on(
                ClientBuilder::new(conn)
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}")),
            ) {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "chromedriver did not start a session: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        Browser {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
            seen: Vec::new(),
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn record_now(&mut self) {
        self.record();
    }

    fn record(&mut self) {
        let url = self.url();
        let html = self.source();
        self.seen.push((url, html));
    }

    pub fn goto(&mut self, url: &str) {
        self.rt
            .block_on(self.c().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
        self.record();
    }

    pub fn url(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .unwrap()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).unwrap()
    }

    pub fn fill(&self, css: &str, text: &str) {
        let c = self.c();
        self.rt.block_on(async {
            let e = c
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"));
            e.clear().await.ok();
            e.send_keys(text)
                .await
                .unwrap_or_else(|e| panic!("type into {css}: {e}"));
        });
    }

    /// Clicks something that leads to another page, and waits until that page has loaded.
    pub fn click(&mut self, css: &str) {
        // A mark on the window goes with the old document: its absence is the new page.
        self.script("window.sealwrightOldPage = true; return null;");
        let c = self.c();
        self.rt.block_on(async {
            c.find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"))
                .click()
                .await
                .unwrap_or_else(|e| panic!("click {css}: {e}"));
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self
                .rt
                .block_on(c.execute(
                    "return (window.sealwrightOldPage ? 'old' : document.readyState)",
                    vec![],
                ))
                .ok();
            if state.as_ref().and_then(|v| v.as_str()) == Some("complete") {
                break;
            }
            assert!(Instant::now() < deadline, "clicking {css} led to no page");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.record();
    }

    /// Clicks something on the page that stays (a checkbox).
    pub fn tick(&self, css: &str) {
        let c = self.c();
        self.rt.block_on(async {
            c.find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"))
                .click()
                .await
                .unwrap_or_else(|e| panic!("click {css}: {e}"));
        });
    }

    /// Runs a script in the page (the test's own, through WebDriver: not the page's CSP).
    pub fn script(&self, js: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(js, vec![]))
            .unwrap_or_else(|e| panic!("{js}: {e}"))
    }

    /// The text of the first element `css` matches, if there is one.
    pub fn text(&self, css: &str) -> Option<String> {
        let c = self.c();
        self.rt.block_on(async {
            match c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.ok(),
                Err(_) => None,
            }
        })
    }

    /// Waits (without reloading) until `css`'s text satisfies `ok`; its last text.
    pub fn wait_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text(css).unwrap_or_default();
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never matched; last text {t:?}\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.rt
            .block_on(self.c().get_named_cookie(name))
            .ok()
            .map(|c| c.value().to_owned())
    }

    /// A PNG of the window, to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
